package observe

import (
	"net/netip"
	"sort"
	"sync"
	"time"
)

// ConnEntry is a new tracked connection: from SrcPort, translated to To
// (a pod's address and port), seen at At.
type ConnEntry struct {
	At      time.Time
	SrcPort uint16
	To      netip.AddrPort
}

// ConntrackListener holds what ListenConntrack saw.
type ConntrackListener struct {
	mu      sync.Mutex
	entries []ConnEntry
	err     error
	done    chan struct{}
}

// Wait waits until the listener has stopped (its ctx ended).
func (l *ConntrackListener) Wait() { <-l.done }

// Entries returns the entries seen, and an error if events may have been
// lost (then "no entry" proves nothing).
func (l *ConntrackListener) Entries() ([]ConnEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ConnEntry(nil), l.entries...), l.err
}

// Dial is one request's connection attempt from a known source port.
type Dial struct {
	Seq     int64
	SrcPort uint16
	At      time.Time
}

// Match finds each dial's entry: the first with its source port seen from
// just before the dial (the clock's resolution) to window after it. Ports
// are reused over a run, so time decides between entries of one port.
func Match(dials []Dial, entries []ConnEntry, window time.Duration) map[int64]ConnEntry {
	byPort := map[uint16][]ConnEntry{}
	for _, e := range entries {
		byPort[e.SrcPort] = append(byPort[e.SrcPort], e)
	}
	for _, es := range byPort {
		sort.Slice(es, func(i, j int) bool { return es[i].At.Before(es[j].At) })
	}
	out := map[int64]ConnEntry{}
	for _, d := range dials {
		for _, e := range byPort[d.SrcPort] {
			if e.At.Before(d.At.Add(-10 * time.Millisecond)) {
				continue
			}
			if e.At.After(d.At.Add(window)) {
				break
			}
			out[d.Seq] = e
			break
		}
	}
	return out
}
