package server

// DisableParking makes s keep a goroutine per idle holder, as on systems
// without epoll, so that tests cover both paths on Linux. Call it before
// Serve.
func DisableParking(s *Server) {
	if s.parker != nil {
		s.parker.close()
		s.parker = nil
	}
}
