package agent

import "time"

// SetNow shifts the clock /clock reads; call it before serving.
func (s *Server) SetNow(now func() time.Time) { s.now = now }
