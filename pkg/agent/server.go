package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/rollguard/rollguard/pkg/observe"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// ErrNotStarted is what stopping an agent that never started returns.
var ErrNotStarted = errors.New("the agent has not started a run: POST /start first")

// Bounds on request bodies: a StartConfig is small; a probe set of 10k
// pods is about 1 MB.
const (
	maxStartBody = 64 << 10
	maxProbeBody = 8 << 20
)

// Server is the agent: an http.Handler for the API in the package comment.
// It runs one run in its life; Close ends whatever is still going.
type Server struct {
	deadline time.Time        // when the agent will exit; zero for never
	now      func() time.Time // the clock /clock reads; tests shift it
	mux      *http.ServeMux
	base     context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex
	targets  map[string]string // pod → address: the set /probe gave last
	prober   *observe.Prober   // nil before /start
	node     int
	done     chan struct{} // closed once the run has ended and all is recorded; nil before /start
	stop     chan struct{} // closed to end the schedule
	stopOnce sync.Once
	runErr   error
	records  []traffic.Record
	events   []timeline.Event
	byClass  map[traffic.Class]int
	late     int
}

// NewServer returns an agent that will live maxRun (0: no limit): it
// refuses a run that would not end by then, as well as one longer than
// traffic.MaxDuration, the engine's own limit. Ending its life when maxRun
// is over is its caller's part.
func NewServer(maxRun time.Duration) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{now: time.Now, mux: http.NewServeMux(), base: ctx, cancel: cancel,
		targets: map[string]string{}, stop: make(chan struct{}), byClass: map[traffic.Class]int{}}
	if maxRun > 0 {
		s.deadline = time.Now().Add(maxRun)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /clock", s.handleClock)
	s.mux.HandleFunc("POST /start", s.handleStart)
	s.mux.HandleFunc("POST /probe", s.handleProbe)
	s.mux.HandleFunc("GET /progress", s.handleProgress)
	s.mux.HandleFunc("POST /stop", s.handleStop)
	s.mux.HandleFunc("GET /records", s.handleRecords)
	return s
}

// ServeHTTP serves the agent's API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close aborts the run, if one is going: requests in flight are cut and
// not recorded. Stop first to keep them.
func (s *Server) Close() { s.cancel() }

func (s *Server) handleClock(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, clock{Now: s.now().UnixNano()})
}

type clock struct {
	Now int64 `json:"now"`
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	var cfg StartConfig
	if err := decode(w, r, maxStartBody, &cfg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := cfg.Validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if left := time.Until(s.deadline); !s.deadline.IsZero() && cfg.MaxDuration > left {
		http.Error(w, fmt.Sprintf("maxDurationNs %d (%s): this agent exits in %s (its --max-run): start a new agent pod, or ask for less",
			int64(cfg.MaxDuration), cfg.MaxDuration, left.Round(time.Second)), http.StatusBadRequest)
		return
	}
	if err := s.start(cfg); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	writeJSON(w, struct {
		Started bool `json:"started"`
	}{true})
}

// start begins the run: the prober on the targets known so far, and the
// traffic, which ends at cfg.MaxDuration at the latest.
func (s *Server) start(cfg StartConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("the agent has already started its run; an agent runs once: start a new agent pod")
	}
	p := &observe.Prober{Period: cfg.probePeriod(), Timeout: min(cfg.probePeriod(), time.Second), Node: cfg.Node,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		Emit: s.addEvent}
	for pod, addr := range s.targets {
		p.Watch(pod, addr)
	}
	s.prober, s.node, s.done = p, cfg.Node, make(chan struct{})
	go s.run(cfg, p, s.done)
	return nil
}

func (s *Server) run(cfg StartConfig, p *observe.Prober, done chan struct{}) {
	pctx, stopProbing := context.WithCancel(s.base)
	probed := make(chan struct{})
	go func() { p.Run(pctx); close(probed) }()
	// The schedule ends at MaxDuration by itself, unless the engine is
	// behind; the timer ends it then too.
	hard := time.AfterFunc(cfg.MaxDuration, s.endSchedule)
	dial := func(ctx context.Context, _ int, _ int64) (net.Conn, traffic.Pick, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", cfg.Target)
		return c, traffic.Pick{}, err // kube-proxy picks the endpoint; the agent cannot see which
	}
	// With conntrack, each request dials from a port it knows, and the
	// kernel's entry for that port names the pod it went to.
	var ct *observe.ConntrackListener
	var dials []observe.Dial
	var dmu sync.Mutex
	ctErr := error(nil)
	ctx, stopCT := context.WithCancel(s.base)
	if cfg.Conntrack {
		target, err := netip.ParseAddrPort(cfg.Target)
		if err == nil {
			ct, err = observe.ListenConntrack(ctx, target)
		}
		ctErr = err
	}
	if ct != nil {
		dial = func(ctx context.Context, _ int, seq int64) (net.Conn, traffic.Pick, error) {
			at := time.Now()
			c, port, err := dialFromKnownPort(ctx, cfg.Target)
			if port != 0 {
				dmu.Lock()
				dials = append(dials, observe.Dial{Seq: seq, SrcPort: port, At: at})
				dmu.Unlock()
			}
			return c, traffic.Pick{}, err
		}
	}
	err := traffic.Run(s.base, cfg.traffic(s.stop, dial), sink{s})
	hard.Stop()
	stopProbing()
	<-probed // Run returns after its last look: no event comes later
	if ct != nil {
		time.Sleep(200 * time.Millisecond) // the last entries' events are on their way
		stopCT()
		ct.Wait()
		entries, lost := ct.Entries()
		if lost != nil {
			ctErr = lost
		} else {
			var track observe.Conntrack
			for seq, e := range observe.Match(dials, entries, 2*time.Second) {
				track.Track(e.At, cfg.Node, seq, e.To.String())
			}
			for _, e := range track.Events() {
				s.addEvent(e)
			}
		}
	}
	stopCT()
	s.mu.Lock()
	if err != nil {
		s.runErr = fmt.Errorf("the run was aborted, requests in flight are missing: %w", err)
	}
	if ctErr != nil {
		// Without every entry, "no entry" would read as "sent to no pod":
		// the run goes on without conntrack, and verify says so.
		fmt.Fprintf(os.Stderr, "rollguard agent: %v: no request is matched to a pod\n", ctErr)
	}
	s.mu.Unlock()
	close(done)
}

func (s *Server) endSchedule() { s.stopOnce.Do(func() { close(s.stop) }) }

// sink writes the agent's node on each record and keeps it.
type sink struct{ s *Server }

func (k sink) Add(r traffic.Record) {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	r.Node = k.s.node
	k.s.records = append(k.s.records, r)
	k.s.byClass[r.Class]++
	if r.Late {
		k.s.late++
	}
}

func (s *Server) addEvent(e timeline.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	var ts []Target
	if err := decode(w, r, maxProbeBody, &ts); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	set := make(map[string]string, len(ts))
	for i, t := range ts {
		if t.Pod == "" {
			http.Error(w, fmt.Sprintf("target %d: no pod name", i), http.StatusBadRequest)
			return
		}
		if _, _, err := net.SplitHostPort(t.Addr); err != nil {
			http.Error(w, fmt.Sprintf("target %d (pod %s): addr %q: want IP:PORT, the pod's IP and served port", i, t.Pod, t.Addr), http.StatusBadRequest)
			return
		}
		if _, dup := set[t.Pod]; dup {
			http.Error(w, fmt.Sprintf("target %d: pod %s is listed twice", i, t.Pod), http.StatusBadRequest)
			return
		}
		set[t.Pod] = t.Addr
	}
	if err := s.probe(set); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	writeJSON(w, struct {
		Targets int `json:"targets"`
	}{len(set)})
}

// probe makes set the prober's targets. A pod whose address changed (a
// StatefulSet pod recreated under its name) is probed afresh.
func (s *Server) probe(set map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil && closed(s.done) {
		return errors.New("the run has ended: nothing is probed any more")
	}
	if p := s.prober; p != nil {
		for pod, addr := range s.targets {
			if set[pod] != addr {
				p.Forget(pod)
			}
		}
		for pod, addr := range set {
			p.Watch(pod, addr) // a no-op for a pod still probed at the same address
		}
	}
	s.targets = set
	return nil
}

func (s *Server) handleProgress(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.Progress()) }

// Progress returns the run's counts so far.
func (s *Server) Progress() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Progress{Started: s.done != nil, Done: s.done != nil && closed(s.done), Sent: len(s.records),
		OK: s.byClass[traffic.OK], Late: s.late, ByClass: make(map[traffic.Class]int, len(s.byClass)), Events: len(s.events)}
	for c, n := range s.byClass {
		p.ByClass[c] = n
	}
	p.Failed = p.Sent - p.OK
	return p
}

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	n, err := s.Stop(r.Context())
	switch {
	case errors.Is(err, ErrNotStarted):
		http.Error(w, err.Error(), http.StatusConflict)
	case r.Context().Err() != nil:
		return // the caller has gone
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, struct {
			Sent int `json:"sent"`
		}{n})
	}
}

// Stop ends the run's schedule and waits until the requests in flight
// (each bounded by its timeouts) and the prober have finished, then
// returns the number of records. It can be called any number of times.
func (s *Server) Stop(ctx context.Context) (int, error) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return 0, ErrNotStarted
	}
	s.endSchedule()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records), s.runErr
}

func (s *Server) handleRecords(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	done, runErr := s.done, s.runErr
	records, events := s.records, s.events // final once done is closed
	s.mu.Unlock()
	switch {
	case done == nil:
		http.Error(w, ErrNotStarted.Error(), http.StatusConflict)
		return
	case !closed(done):
		http.Error(w, "the run is still going: POST /stop first (or wait for its maxDuration)", http.StatusConflict)
		return
	case runErr != nil:
		http.Error(w, runErr.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	n := counts{Records: len(records), Events: len(events)}
	if enc.Encode(line{Begin: &n}) != nil {
		return
	}
	for i := range records {
		if enc.Encode(line{R: &records[i]}) != nil {
			return // the client has gone
		}
	}
	for i := range events {
		if enc.Encode(line{E: &events[i]}) != nil {
			return
		}
	}
	if enc.Encode(line{End: &n}) != nil {
		return
	}
	_ = bw.Flush()
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// decode reads a JSON body of at most limit bytes into v, refusing unknown
// fields: an agent older than its verify says so instead of ignoring them.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading the request body: %w", err)
	}
	if dec.More() {
		return errors.New("reading the request body: more than one JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
