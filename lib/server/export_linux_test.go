package server

// Parked is the number of connections the parker holds now.
func Parked(s *Server) int {
	p := s.parker
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.byFD {
		if c != nil {
			n++
		}
	}
	return n
}
