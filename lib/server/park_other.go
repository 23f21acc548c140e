//go:build !linux

package server

import "log/slog"

// parker is Linux-only (epoll); elsewhere an idle holder keeps its goroutine.
type parker struct{}

func newParker(*slog.Logger) *parker { return nil }
func (p *parker) park(*conn) bool    { return false }
func (p *parker) close()             {}
func (p *parker) unpark(*conn) bool  { return false }
