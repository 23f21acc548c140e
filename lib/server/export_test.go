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

// Reclaims is how many times s has returned free memory after a surge.
func Reclaims(s *Server) int64 { return s.rec.runs.Load() }

// SurgeMin is the smallest peak of connections that counts as a surge.
const SurgeMin = surgeMin
