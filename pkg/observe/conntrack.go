package observe

import (
	"sync"
	"time"

	"github.com/rollguard/rollguard/pkg/timeline"
)

// Conntrack records which endpoint each of an agent's connections was sent
// to. On a node, an agent with NET_ADMIN on the host network reads this from
// the kernel's connection tracking: the entry of a connection to the
// Service's address names the pod address kube-proxy translated it to,
// and the agent matches it to its own request by source port. The lab's
// client nodes know it from their own proxies' choice, which is the same
// decision.
type Conntrack struct {
	mu     sync.Mutex
	events []timeline.Event
}

// Track records that request seq from node went to pod at t.
func (c *Conntrack) Track(t time.Time, node int, seq int64, pod string) {
	c.mu.Lock()
	c.events = append(c.events, timeline.Event{At: t, Kind: timeline.ConnTracked, Node: node, Seq: seq, Pod: pod})
	c.mu.Unlock()
}

// Events returns what was recorded.
func (c *Conntrack) Events() []timeline.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]timeline.Event(nil), c.events...)
}
