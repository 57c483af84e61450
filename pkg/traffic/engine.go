package traffic

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how each request talks to the target.
type Mode string

// The modes. Connect opens and closes a TCP connection; HTTP sends one GET
// over a new connection; KeepAlive reuses connections, so only new
// connections pick an endpoint, as with a real Service.
const (
	ModeConnect   Mode = "connect"
	ModeHTTP      Mode = "http"
	ModeKeepAlive Mode = "http-keepalive"
)

// Modes lists the modes.
var Modes = []Mode{ModeConnect, ModeHTTP, ModeKeepAlive}

// Pick is an endpoint choice a dialer made: ground truth that the lab
// knows and verify does not. Diagnosis never reads Endpoint.
type Pick struct {
	Endpoint string
	At       time.Time
}

// Dialer opens a connection for a request sent from a client node.
type Dialer func(ctx context.Context, node int, seq int64) (net.Conn, Pick, error)

// Limits that keep every run bounded.
const (
	MaxRate     = 50000.0
	MaxDuration = 30 * time.Minute
	MaxRequests = 20_000_000
)

// Config describes a run.
type Config struct {
	// Rate is requests per second. Zero means closed loop: Workers
	// workers send as fast as they can, for throughput benchmarks.
	Rate     float64
	Duration time.Duration
	// Nodes spreads requests round-robin over client nodes (at least 1).
	Nodes int
	Mode  Mode
	// Timeouts for connecting and for the response.
	ConnectTimeout, ResponseTimeout time.Duration
	// Workers is the closed-loop worker count; MaxWorkers bounds the
	// open-loop pool.
	Workers, MaxWorkers int
	// LateAfter: a request that starts this long after its intended time
	// is counted late (it is still sent, and its latency includes the wait).
	LateAfter time.Duration
	Dial      Dialer
	// Host and Path of the HTTP request.
	Host, Path string
	// Stop, when closed, ends the schedule early: no new request is sent,
	// and those in flight complete (each bounded by its timeouts).
	// Cancelling Run's context instead aborts them too.
	Stop <-chan struct{}
}

// Validate checks that a run is bounded and well formed.
func (c *Config) Validate() error {
	switch {
	case c.Rate < 0 || c.Rate > MaxRate:
		return fmt.Errorf("rate %g: want 0 to %g requests per second", c.Rate, MaxRate)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration %s: want more than 0 and at most %s", c.Duration, MaxDuration)
	case c.Rate*c.Duration.Seconds() > MaxRequests:
		return fmt.Errorf("%g requests/s for %s is more than %d requests", c.Rate, c.Duration, MaxRequests)
	case c.Rate == 0 && c.Workers <= 0:
		return fmt.Errorf("a closed-loop run (rate 0) needs workers")
	case c.Dial == nil:
		return fmt.Errorf("no dialer")
	}
	switch c.Mode {
	case ModeConnect, ModeHTTP, ModeKeepAlive:
	default:
		return fmt.Errorf("mode %q: want connect, http or http-keepalive", c.Mode)
	}
	return nil
}

func (c *Config) defaults() {
	if c.Nodes < 1 {
		c.Nodes = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 4 * time.Second // longer than ARP's ~3s, so "no route" shows as itself
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = 5 * time.Second
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = 10000
	}
	if c.LateAfter == 0 {
		c.LateAfter = 10 * time.Millisecond
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Host == "" {
		c.Host = "rollguard"
	}
}

// Record is one request's outcome.
type Record struct {
	Seq  int64 `json:"seq"`
	Node int   `json:"node"`
	// Intended is when the schedule said to send it; Start when it began
	// (when the endpoint was picked, for a dialer that picks).
	Intended time.Time     `json:"intended"`
	Start    time.Time     `json:"start"`
	Latency  time.Duration `json:"latencyNs"` // from Intended to the outcome
	Class    Class         `json:"class"`
	Status   int           `json:"status,omitempty"`
	Err      string        `json:"error,omitempty"`
	Endpoint string        `json:"endpoint,omitempty"`
	Late     bool          `json:"late,omitempty"`

	err error // the error itself, for the engine's own checks
}

// Sink receives records as they complete, from many goroutines.
type Sink interface{ Add(Record) }

// Run sends the configured traffic until its duration ends or ctx is
// cancelled, then waits for requests in flight (each bounded by its
// timeouts). It returns ctx's error when it was cut short.
func Run(ctx context.Context, cfg Config, sinks ...Sink) error {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	e := &engine{cfg: cfg, sinks: sinks, start: time.Now()}
	e.client = e.keepAliveClients()
	if cfg.Rate == 0 {
		e.closedLoop(ctx)
	} else {
		e.openLoop(ctx)
	}
	for _, c := range e.client {
		c.CloseIdleConnections()
	}
	return ctx.Err()
}

type engine struct {
	cfg    Config
	sinks  []Sink
	start  time.Time
	client []*http.Client // one per node, keep-alive mode only
	seq    atomic.Int64
}

type job struct {
	seq      int64
	intended time.Time
}

func (e *engine) openLoop(ctx context.Context) {
	total := int64(e.cfg.Rate * e.cfg.Duration.Seconds())
	interval := time.Duration(float64(time.Second) / e.cfg.Rate)
	jobs := make(chan job)
	var wg sync.WaitGroup
	workers := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for i := int64(0); i < total; i++ {
		intended := e.start.Add(time.Duration(i) * interval)
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-e.cfg.Stop:
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil || stopped(e.cfg.Stop) {
			break
		}
		j := job{seq: i, intended: intended}
		select {
		case jobs <- j:
		default:
			if workers < e.cfg.MaxWorkers {
				workers++
				wg.Add(1)
				go func() {
					defer wg.Done()
					e.do(ctx, j)
					for j := range jobs {
						e.do(ctx, j)
					}
				}()
			} else {
				select { // every worker busy: wait; the request will count as late
				case jobs <- j:
				case <-ctx.Done():
					break loop
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
}

func (e *engine) closedLoop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < e.cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !stopped(e.cfg.Stop) {
				e.do(ctx, job{seq: e.seq.Add(1) - 1, intended: time.Now()})
			}
		}()
	}
	wg.Wait()
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// do sends one request and hands its record to the sinks.
func (e *engine) do(ctx context.Context, j job) {
	node := int(j.seq % int64(e.cfg.Nodes))
	r := Record{Seq: j.seq, Node: node, Intended: j.intended, Start: time.Now()}
	r.Late = r.Start.Sub(j.intended) > e.cfg.LateAfter
	switch e.cfg.Mode {
	case ModeKeepAlive:
		e.keepAlive(ctx, &r)
	default:
		e.newConn(ctx, &r)
	}
	if r.Class == "" {
		r.Class = OK
	}
	if ctx.Err() != nil && errors.Is(r.err, context.Canceled) {
		return // aborted by the caller, not lost
	}
	r.Latency = time.Since(j.intended)
	for _, s := range e.sinks {
		s.Add(r)
	}
}

func (e *engine) fail(r *Record, err error, p phase) {
	r.Class, r.Err, r.err = classify(err, p), err.Error(), err
}

// newConn dials a new connection for the request: connect mode closes it
// at once, HTTP mode sends one GET and reads the response.
func (e *engine) newConn(ctx context.Context, r *Record) {
	dctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	conn, pick, err := e.cfg.Dial(dctx, r.Node, r.Seq)
	cancel()
	if !pick.At.IsZero() {
		r.Start = pick.At
	}
	r.Endpoint = pick.Endpoint
	if err != nil {
		e.fail(r, err, phaseConnect)
		return
	}
	defer conn.Close()
	if e.cfg.Mode == ModeConnect {
		return
	}
	if err := conn.SetDeadline(time.Now().Add(e.cfg.ResponseTimeout)); err != nil {
		e.fail(r, err, phaseResponse)
		return
	}
	req := "GET " + e.cfg.Path + " HTTP/1.1\r\nHost: " + e.cfg.Host + "\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		e.fail(r, err, phaseResponse)
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.fail(r, err, phaseResponse)
		return
	}
	e.finish(r, resp)
}

// finish reads the response to its end and classifies the outcome: the
// status, or the error that cut the body short.
func (e *engine) finish(r *Record, resp *http.Response) {
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.Status, r.Class = resp.StatusCode, classifyStatus(resp.StatusCode)
	if err != nil && r.Class == OK {
		e.fail(r, err, phaseResponse)
	}
}

// pickConn is a connection that remembers the endpoint its dial picked.
type pickConn struct {
	net.Conn
	pick Pick
}

type seqKey struct{}

func (e *engine) keepAliveClients() []*http.Client {
	if e.cfg.Mode != ModeKeepAlive {
		return nil
	}
	var clients []*http.Client
	for n := 0; n < e.cfg.Nodes; n++ {
		node := n
		tr := &http.Transport{
			MaxIdleConnsPerHost: 1024,
			DisableCompression:  true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				seq, _ := ctx.Value(seqKey{}).(int64)
				dctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
				defer cancel()
				conn, pick, err := e.cfg.Dial(dctx, node, seq)
				if err != nil {
					return nil, &dialError{err: err, pick: pick}
				}
				return &pickConn{Conn: conn, pick: pick}, nil
			},
		}
		clients = append(clients, &http.Client{Transport: tr, Timeout: e.cfg.ConnectTimeout + e.cfg.ResponseTimeout})
	}
	return clients
}

// dialError carries a failed dial's pick through net/http.
type dialError struct {
	err  error
	pick Pick
}

func (d *dialError) Error() string { return d.err.Error() }
func (d *dialError) Unwrap() error { return d.err }

func (e *engine) keepAlive(ctx context.Context, r *Record) {
	var got net.Conn
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { got = info.Conn }}
	ctx = httptrace.WithClientTrace(context.WithValue(ctx, seqKey{}, r.Seq), trace)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.cfg.Host+e.cfg.Path, nil)
	if err != nil {
		e.fail(r, err, phaseConnect)
		return
	}
	resp, err := e.client[r.Node].Do(req)
	if pc, ok := got.(*pickConn); ok {
		r.Endpoint = pc.pick.Endpoint
	}
	if err != nil {
		var de *dialError
		if errors.As(err, &de) {
			r.Endpoint = de.pick.Endpoint
			if !de.pick.At.IsZero() {
				r.Start = de.pick.At
			}
			e.fail(r, de.err, phaseConnect)
			return
		}
		e.fail(r, err, phaseResponse)
		return
	}
	e.finish(r, resp)
}
