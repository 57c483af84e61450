// Package agent implements verify's per-node agent and the client verify
// drives it with. One agent pod runs on each node (the rollguard binary,
// `rollguard agent`): it sends open-loop traffic to a Service's ClusterIP
// through that node's kube-proxy with the traffic engine, and dials the
// pods it is told about with the listen prober. verify reaches each agent
// only through the API server's pod proxy, so the agent is a small HTTP
// server with JSON bodies:
//
//	GET  /healthz   "ok": the pod's readinessProbe
//	GET  /clock     the agent's time, for verify's clock-offset estimate
//	POST /start     a StartConfig: start traffic and the prober (once)
//	POST /probe     the full []Target set of pods to dial
//	GET  /progress  a Progress
//	POST /stop      end the run and wait until everything is recorded
//	GET  /records   every record and prober event, as JSON lines
//
// An agent runs at most one run; its records stay in memory until it exits,
// which StartConfig.Validate bounds with MaxRecords.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// DefaultPort is the port the agent listens on unless told otherwise.
const DefaultPort = 8642

// Limits of one run. Records are kept in memory until /records is read,
// about 200 bytes each, so MaxRecords bounds the agent's memory near
// 200 MB; the timeouts bound how long /stop waits for requests in flight.
const (
	MaxRecords         = 1_000_000
	MaxRequestTimeout  = time.Minute
	DefaultProbePeriod = 100 * time.Millisecond
	MinProbePeriod     = 10 * time.Millisecond
	MaxProbePeriod     = 5 * time.Second
)

// StartConfig is the body of POST /start: what traffic to send and how
// often to probe. Durations are in nanoseconds on the wire.
type StartConfig struct {
	// Target is the Service's ClusterIP and port, "IP:PORT": connections
	// to it go through this node's kube-proxy.
	Target string       `json:"target"`
	Mode   traffic.Mode `json:"mode"`
	// Rate is requests per second; it must be more than 0 (open loop).
	Rate float64 `json:"rate"`
	// MaxDuration ends the run even if nobody calls /stop.
	MaxDuration time.Duration `json:"maxDurationNs"`
	// Node is the index verify gives this agent, written on every record
	// and event.
	Node int `json:"node"`
	// Host and Path of the HTTP requests; the engine's defaults when empty.
	Host string `json:"host,omitempty"`
	Path string `json:"path,omitempty"`
	// Timeouts of one request; the engine's defaults (4s, 5s) when 0.
	ConnectTimeout  time.Duration `json:"connectTimeoutNs,omitempty"`
	ResponseTimeout time.Duration `json:"responseTimeoutNs,omitempty"`
	// ProbePeriod is the time between two dials of a pod by the prober;
	// DefaultProbePeriod when 0.
	ProbePeriod time.Duration `json:"probePeriodNs,omitempty"`
	// Conntrack makes the agent read, from the kernel's connection
	// tracking, the pod address each request was translated to, and send
	// it as ConnTracked events (Pod holds "IP:PORT"). The agent must run on
	// the node's network with NET_ADMIN, and each request must open its
	// own connection (mode http or connect).
	Conntrack bool `json:"conntrack,omitempty"`
}

// Validate checks that a run is well formed and bounded: in time, in
// requests (and so in the memory its records take) and in how long
// stopping it can take.
func (c StartConfig) Validate() error {
	host, port, err := net.SplitHostPort(c.Target)
	if err != nil || host == "" {
		return fmt.Errorf("target %q: want IP:PORT, the Service's ClusterIP and port", c.Target)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("target %q: port %q is not a number from 1 to 65535", c.Target, port)
	}
	switch {
	case c.Rate <= 0 || c.Rate > traffic.MaxRate:
		return fmt.Errorf("rate %g: want more than 0 and at most %g requests per second", c.Rate, traffic.MaxRate)
	case c.MaxDuration <= 0 || c.MaxDuration > traffic.MaxDuration:
		return fmt.Errorf("maxDurationNs %d (%s): want more than 0 and at most %s", int64(c.MaxDuration), c.MaxDuration, traffic.MaxDuration)
	case c.Rate*c.MaxDuration.Seconds() > MaxRecords:
		return fmt.Errorf("%g requests/s for %s is more than the %d records an agent keeps: lower the rate or the duration",
			c.Rate, c.MaxDuration, MaxRecords)
	case c.Node < 0:
		return fmt.Errorf("node %d: want 0 or more", c.Node)
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"connectTimeoutNs", c.ConnectTimeout}, {"responseTimeoutNs", c.ResponseTimeout}} {
		if t.d < 0 || t.d > MaxRequestTimeout {
			return fmt.Errorf("%s %d (%s): want 0 (the default) to %s", t.name, int64(t.d), t.d, MaxRequestTimeout)
		}
	}
	if c.Conntrack && c.Mode == traffic.ModeKeepAlive {
		return fmt.Errorf("conntrack with mode %s: a kept-alive connection carries many requests; use http or connect", c.Mode)
	}
	if c.ProbePeriod != 0 && (c.ProbePeriod < MinProbePeriod || c.ProbePeriod > MaxProbePeriod) {
		return fmt.Errorf("probePeriodNs %d (%s): want 0 (the default, %s) or %s to %s",
			int64(c.ProbePeriod), c.ProbePeriod, DefaultProbePeriod, MinProbePeriod, MaxProbePeriod)
	}
	// The engine's own checks cover the mode; the dialer is the server's.
	tc := c.traffic(nil, func(context.Context, int, int64) (net.Conn, traffic.Pick, error) {
		return nil, traffic.Pick{}, errors.New("not dialing")
	})
	return tc.Validate()
}

// traffic is the engine's configuration for this run: one client node
// (the server writes Node on each record), stopped early by closing stop.
func (c StartConfig) traffic(stop <-chan struct{}, dial traffic.Dialer) traffic.Config {
	return traffic.Config{Rate: c.Rate, Duration: c.MaxDuration, Nodes: 1, Mode: c.Mode,
		ConnectTimeout: c.ConnectTimeout, ResponseTimeout: c.ResponseTimeout,
		Host: c.Host, Path: c.Path, Stop: stop, Dial: dial}
}

func (c StartConfig) probePeriod() time.Duration {
	if c.ProbePeriod == 0 {
		return DefaultProbePeriod
	}
	return c.ProbePeriod
}

// Target is one pod for the prober: its name, and its own address and
// served port, "IP:PORT". POST /probe takes the full set.
type Target struct {
	Pod  string `json:"pod"`
	Addr string `json:"addr"`
}

// Progress is the body of GET /progress. Sent counts the requests whose
// outcome is recorded (a request in flight is not yet counted); OK and
// Failed split it; Late counts those sent more than 10ms after their
// intended time; Events counts the prober's events.
type Progress struct {
	Started bool                  `json:"started"`
	Done    bool                  `json:"done"`
	Sent    int                   `json:"sent"`
	OK      int                   `json:"ok"`
	Failed  int                   `json:"failed"`
	Late    int                   `json:"late"`
	ByClass map[traffic.Class]int `json:"byClass"`
	Events  int                   `json:"events"`
}

// line is one line of GET /records: the counts first, then each record and
// event, then the counts again, so a client can tell a cut stream.
type line struct {
	Begin *counts         `json:"begin,omitempty"`
	R     *traffic.Record `json:"r,omitempty"`
	E     *timeline.Event `json:"e,omitempty"`
	End   *counts         `json:"end,omitempty"`
}

type counts struct {
	Records int `json:"records"`
	Events  int `json:"events"`
}
