package lab

import (
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// serverRecord is what a pod's own server knows of itself: when it opened
// its listener and when it closed it (zero when it never did).
type serverRecord struct{ listened, closed time.Time }

// records returns every pod's own record, by name.
func (c *cluster) records() map[string]serverRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]serverRecord{}
	for _, p := range c.pods {
		out[p.name] = serverRecord{p.listened, p.closed}
	}
	return out
}

// groundTruth attributes each failure from the other side: the endpoint
// the lab's proxy really picked for the request, and that pod's own record
// of whether it was listening. It reads no observer and shares no code
// with the diagnosis: a pod that had not opened its listener yet is Case
// 2; one that had closed it by the time the request failed (for a cut
// connection, when it was cut) is Case 1.
func groundTruth(pods map[string]serverRecord, failures []traffic.Record) map[int64]diagnose.Cause {
	out := map[int64]diagnose.Cause{}
	for _, r := range failures {
		p, ok := pods[r.Endpoint]
		failed := r.Start
		switch r.Class {
		case traffic.Reset, traffic.EOF, traffic.ResponseTimeout:
			failed = r.Intended.Add(r.Latency) // cut after it was made
		}
		switch {
		case !ok:
			out[r.Seq] = diagnose.Other // no endpoint at all
		case p.listened.IsZero() || p.listened.After(r.Start):
			out[r.Seq] = diagnose.Case2
		case !p.closed.IsZero() && !p.closed.After(failed):
			out[r.Seq] = diagnose.Case1
		default:
			out[r.Seq] = diagnose.Other
		}
	}
	return out
}
