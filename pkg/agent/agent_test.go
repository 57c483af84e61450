package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// Generous bounds: these tests run on loaded 2-core machines. Waits poll
// for a state and fail only at the deadline.
const deadline = 60 * time.Second

// newAgent serves a real agent on 127.0.0.1 and returns a client for it.
func newAgent(t *testing.T, maxRun time.Duration) (*agent.Client, *agent.Server) {
	t.Helper()
	s := agent.NewServer(maxRun)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return &agent.Client{Base: hs.URL, HTTP: hs.Client(), Name: "agent-test"}, s
}

// target is a loopback HTTP server answering "ok".
func target(t *testing.T) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
	t.Cleanup(hs.Close)
	return hs.Listener.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// listener accepts connections and closes them at once, until closed.
func listener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor polls the agent's progress until ok says so.
func waitFor(t *testing.T, c *agent.Client, what string, ok func(agent.Progress) bool) agent.Progress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for {
		p, err := c.Progress(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(p) {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waited %s for %s; progress %+v", deadline, what, p)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestRunRecordsEveryRequest drives a run through the client: every
// request the agent sent is in /records, with the agent's node and the
// class the target's state gives.
func TestRunRecordsEveryRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mode   traffic.Mode
		closed bool
		want   traffic.Class
	}{
		{"http", traffic.ModeHTTP, false, traffic.OK},
		{"keep-alive", traffic.ModeKeepAlive, false, traffic.OK},
		{"connect", traffic.ModeConnect, false, traffic.OK},
		{"http to a closed port", traffic.ModeHTTP, true, traffic.Refused},
		{"connect to a closed port", traffic.ModeConnect, true, traffic.Refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newAgent(t, time.Hour)
			addr := target(t)
			if tc.closed {
				addr = closedAddr(t)
			}
			ctx := context.Background()
			err := c.Start(ctx, agent.StartConfig{Target: addr, Mode: tc.mode, Rate: 200, MaxDuration: 30 * time.Second, Node: 3})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, c, "100 requests", func(p agent.Progress) bool { return p.Sent >= 100 })
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			p, err := c.Progress(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Started || !p.Done || p.ByClass[tc.want] != p.Sent || p.OK+p.Failed != p.Sent {
				t.Errorf("progress after stop: %+v, want done and all %d %s", p, p.Sent, tc.want)
			}
			records, events, err := c.Records(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(records) != p.Sent || len(events) != 0 {
				t.Fatalf("%d records and %d events, want %d records (all sent) and no events", len(records), len(events), p.Sent)
			}
			seen := map[int64]bool{}
			for _, r := range records {
				if r.Node != 3 || r.Class != tc.want || seen[r.Seq] || r.Intended.IsZero() {
					t.Fatalf("record %+v: want node 3, class %s, a seq of its own, an intended time", r, tc.want)
				}
				seen[r.Seq] = true
			}
		})
	}
}

// TestProberEvents: /probe before /start is applied at start; a later set
// forgets pods no longer listed and probes a moved pod afresh; a listener
// that closes mid-run shows as accepting, then refusing.
func TestProberEvents(t *testing.T) {
	t.Parallel()
	c, _ := newAgent(t, time.Hour)
	ctx := context.Background()
	l := listener(t)
	open, closed := l.Addr().String(), closedAddr(t)
	err := c.Probe(ctx, []agent.Target{{Pod: "web-1", Addr: open}, {Pod: "web-2", Addr: closed}, {Pod: "web-3", Addr: open}})
	if err != nil {
		t.Fatal(err)
	}
	if p := waitFor(t, c, "progress", func(agent.Progress) bool { return true }); p.Started || p.Events != 0 {
		t.Fatalf("before start: %+v", p)
	}
	err = c.Start(ctx, agent.StartConfig{Target: target(t), Mode: traffic.ModeHTTP, Rate: 20, MaxDuration: 30 * time.Second,
		Node: 1, ProbePeriod: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "the first look at three pods", func(p agent.Progress) bool { return p.Events >= 3 })
	// web-2 moves to the open address; web-3 is gone.
	if err := c.Probe(ctx, []agent.Target{{Pod: "web-1", Addr: open}, {Pod: "web-2", Addr: open}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "web-2 accepting at its new address", func(p agent.Progress) bool { return p.Events >= 4 })
	l.Close()
	waitFor(t, c, "web-1 and web-2 refusing", func(p agent.Progress) bool { return p.Events >= 6 })
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	_, events, err := c.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]timeline.Kind{}
	for _, e := range events {
		if e.Node != 1 || e.At.IsZero() {
			t.Errorf("event %+v: want node 1 and a time", e)
		}
		got[e.Pod] = append(got[e.Pod], e.Kind)
	}
	acc, ref := timeline.PodAccepting, timeline.PodRefusing
	want := map[string][]timeline.Kind{"web-1": {acc, ref}, "web-2": {ref, acc, ref}, "web-3": {acc}}
	for pod, kinds := range want {
		if fmt.Sprint(got[pod]) != fmt.Sprint(kinds) {
			t.Errorf("%s: events %v, want %v (all: %v)", pod, got[pod], kinds, events)
		}
	}
	if err := c.Probe(ctx, nil); !agent.IsConflict(err) {
		t.Errorf("probe after the run: %v, want a 409", err)
	}
}

// TestClock: on loopback the offset is near 0; an agent whose clock is
// shifted shows that shift, within the bound Clock gives.
func TestClock(t *testing.T) {
	t.Parallel()
	for _, shift := range []time.Duration{0, 3 * time.Second, -90 * time.Minute} {
		t.Run(shift.String(), func(t *testing.T) {
			t.Parallel()
			c, s := newAgent(t, time.Hour)
			s.SetNow(func() time.Time { return time.Now().Add(shift) })
			offset, bound, err := c.Clock(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if bound < 0 || bound > time.Second {
				t.Errorf("bound %s: want a loopback round trip's half, under 1s", bound)
			}
			if d := (offset - shift).Abs(); d > bound {
				t.Errorf("offset %s, shift %s: off by %s, more than the bound %s", offset, shift, d, bound)
			}
		})
	}
}

// TestBadRequests: a bad config is a 400 that says what is wrong; the
// calls out of order are 409s.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	c, _ := newAgent(t, 10*time.Minute)
	ctx := context.Background()
	good := agent.StartConfig{Target: target(t), Mode: traffic.ModeHTTP, Rate: 50, MaxDuration: 30 * time.Second}
	for _, tc := range []struct {
		name string
		edit func(*agent.StartConfig)
		want string
	}{
		{"no rate", func(c *agent.StartConfig) { c.Rate = 0 }, "rate 0: want more than 0"},
		{"rate too high", func(c *agent.StartConfig) { c.Rate = 60000 }, "rate 60000"},
		{"mode", func(c *agent.StartConfig) { c.Mode = "udp" }, `mode "udp"`},
		{"no port", func(c *agent.StartConfig) { c.Target = "10.0.0.1" }, `target "10.0.0.1": want IP:PORT`},
		{"port 0", func(c *agent.StartConfig) { c.Target = "10.0.0.1:0" }, `port "0"`},
		{"no duration", func(c *agent.StartConfig) { c.MaxDuration = 0 }, "maxDurationNs 0"},
		{"longer than the engine runs", func(c *agent.StartConfig) { c.MaxDuration = time.Hour }, "at most 30m0s"},
		{"longer than the agent lives", func(c *agent.StartConfig) { c.MaxDuration = 20 * time.Minute }, "this agent exits in"},
		{"too many records", func(c *agent.StartConfig) { c.Rate, c.MaxDuration = 1000, 20*time.Minute }, "records an agent keeps"},
		{"node", func(c *agent.StartConfig) { c.Node = -1 }, "node -1"},
		{"connect timeout", func(c *agent.StartConfig) { c.ConnectTimeout = -time.Second }, "connectTimeoutNs"},
		{"response timeout", func(c *agent.StartConfig) { c.ResponseTimeout = time.Hour }, "responseTimeoutNs"},
		{"probe period", func(c *agent.StartConfig) { c.ProbePeriod = time.Millisecond }, "probePeriodNs"},
	} {
		cfg := good
		tc.edit(&cfg)
		err := c.Start(ctx, cfg)
		var se *agent.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(se.Message, tc.want) ||
			!strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), "agent-test") {
			t.Errorf("%s: %v, want a 400 saying %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name, path, body, want string
	}{
		{"unknown field", "/start", `{"target":"10.0.0.1:80","mode":"http","rat":5}`, `unknown field "rat"`},
		{"not JSON", "/start", `rate=5`, "reading the request body"},
		{"two values", "/probe", `[] []`, "more than one JSON value"},
		{"probe without a name", "/probe", `[{"addr":"10.0.0.1:80"}]`, "target 0: no pod name"},
		{"probe without a port", "/probe", `[{"pod":"a","addr":"10.0.0.1"}]`, `addr "10.0.0.1"`},
		{"probe listing a pod twice", "/probe", `[{"pod":"a","addr":"10.0.0.1:80"},{"pod":"a","addr":"10.0.0.2:80"}]`, "pod a is listed twice"},
	} {
		resp, err := http.Post(c.Base+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 512)
		n, _ := resp.Body.Read(msg)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg[:n]), tc.want) {
			t.Errorf("%s: %d %q, want 400 saying %q", tc.name, resp.StatusCode, msg[:n], tc.want)
		}
	}

	conflict := func(what string, err error, want string) {
		t.Helper()
		if !agent.IsConflict(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a 409 saying %q", what, err, want)
		}
	}
	err := c.Stop(ctx)
	conflict("stop before start", err, "POST /start first")
	_, _, err = c.Records(ctx)
	conflict("records before start", err, "POST /start first")
	if err := c.Start(ctx, good); err != nil {
		t.Fatal(err)
	}
	conflict("a second start", c.Start(ctx, good), "already started")
	_, _, err = c.Records(ctx)
	conflict("records before stop", err, "POST /stop first")
	for range 2 { // stopping again does no harm
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Records(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRunEndsByItself: with nobody calling /stop, a run ends at its
// maxDuration; requests in flight then end at their own timeout.
func TestRunEndsByItself(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		target func(t *testing.T) string
		want   traffic.Class
	}{
		{"answering target", target, traffic.OK},
		{"target that never answers", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var held []net.Conn
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					held = append(held, c)
					mu.Unlock()
				}
			}()
			t.Cleanup(func() {
				l.Close()
				mu.Lock()
				defer mu.Unlock()
				for _, c := range held {
					c.Close()
				}
			})
			return l.Addr().String()
		}, traffic.ResponseTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newAgent(t, time.Hour)
			ctx := context.Background()
			err := c.Start(ctx, agent.StartConfig{Target: tc.target(t), Mode: traffic.ModeHTTP, Rate: 50,
				MaxDuration: time.Second, ResponseTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p := waitFor(t, c, "the run to end", func(p agent.Progress) bool { return p.Done })
			if p.Sent == 0 || p.Sent > 50 || p.ByClass[tc.want] != p.Sent {
				t.Errorf("progress %+v: want at most 50 requests (50/s for 1s), all %s", p, tc.want)
			}
			records, _, err := c.Records(ctx)
			if err != nil || len(records) != p.Sent {
				t.Errorf("records: %d, %v; want %d", len(records), err, p.Sent)
			}
		})
	}
}

// TestRecordsStreamChecked: the client refuses a record stream that was
// cut, lost lines or is not one, and says how much arrived; a non-2xx
// answer carries its status and message, a pod proxy's Status included.
func TestRecordsStreamChecked(t *testing.T) {
	t.Parallel()
	rec := `{"r":{"seq":1,"node":0,"intended":"2026-01-01T00:00:00Z","start":"2026-01-01T00:00:00Z","latencyNs":1,"class":"ok"}}` + "\n"
	ev := `{"e":{"at":"2026-01-01T00:00:00Z","kind":"pod-accepting","pod":"a","node":0}}` + "\n"
	for _, tc := range []struct {
		name, body string
		code       int
		want       string // "" for no error
	}{
		{"whole", `{"begin":{"records":2,"events":1}}` + "\n" + rec + rec + ev + `{"end":{"records":2,"events":1}}` + "\n", 200, ""},
		{"cut after two lines", `{"begin":{"records":5,"events":1}}` + "\n" + rec + rec, 200, "got 2 of 5 records and 0 of 1 events: the stream was cut"},
		{"cut in a line", `{"begin":{"records":1,"events":0}}` + "\n" + rec[:30], 200, "got 0 of 1 records"},
		{"lost lines", `{"begin":{"records":3,"events":0}}` + "\n" + rec + rec + `{"end":{"records":3,"events":0}}` + "\n", 200, "got 2 of 3 records and 0 of 0 events (end line: 3 and 0): the stream lost lines"},
		{"no counts first", rec + `{"end":{"records":1,"events":0}}` + "\n", 200, "not a record stream"},
		{"an HTML page", "<html>proxy error</html>", 200, "not a record stream"},
		{"an unknown line", `{"begin":{"records":1,"events":0}}` + "\n" + `{"x":1}` + "\n", 200, "neither a record"},
		{"pod proxy Status", `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"agent-x\" not found","code":404}`, 404,
			`agent agent-x: GET /records: 404 Not Found: pods "agent-x" not found`},
		{"agent's own message", "the run is still going\n", 409, "409 Conflict: the run is still going"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.code)
				fmt.Fprint(w, tc.body)
			}))
			defer hs.Close()
			c := &agent.Client{Base: hs.URL, Name: "agent-x"}
			records, events, err := c.Records(context.Background())
			switch {
			case tc.want == "" && (err != nil || len(records) != 2 || len(events) != 1):
				t.Errorf("%d records, %d events, %v; want 2, 1 and no error", len(records), len(events), err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			case tc.want != "" && records != nil:
				t.Errorf("%d records returned with an error", len(records))
			}
		})
	}
}

// TestProxyBase: the pod proxy URL keeps the API server's path prefix,
// and a client through a proxy that strips it drives a real agent.
func TestProxyBase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  rest.Config
		want string
	}{
		{rest.Config{Host: "https://10.0.0.1:6443"}, "https://10.0.0.1:6443/api/v1/namespaces/rg/pods/agent-0:8642/proxy"},
		{rest.Config{Host: "https://rancher.example/k8s/clusters/c-1/"}, "https://rancher.example/k8s/clusters/c-1/api/v1/namespaces/rg/pods/agent-0:8642/proxy"},
		{rest.Config{Host: "10.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("x")}}, "https://10.0.0.1:6443/api/v1/namespaces/rg/pods/agent-0:8642/proxy"},
		{rest.Config{Host: "localhost:8080"}, "http://localhost:8080/api/v1/namespaces/rg/pods/agent-0:8642/proxy"},
	} {
		got, err := agent.ProxyBase(&tc.cfg, "rg", "agent-0", agent.DefaultPort)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.cfg.Host, got, err, tc.want)
		}
	}

	s := agent.NewServer(time.Hour)
	t.Cleanup(s.Close)
	mux := http.NewServeMux()
	prefix := "/api/v1/namespaces/rg/pods/agent-0:8642/proxy"
	mux.Handle(prefix+"/", http.StripPrefix(prefix, s))
	apiserver := httptest.NewServer(mux)
	t.Cleanup(apiserver.Close)
	cfg := &rest.Config{Host: apiserver.URL}
	base, err := agent.ProxyBase(cfg, "rg", "agent-0", agent.DefaultPort)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &agent.Client{Base: base, HTTP: hc, Name: "agent-0"}
	ctx := context.Background()
	if _, _, err := c.Clock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, agent.StartConfig{Target: target(t), Mode: traffic.ModeConnect, Rate: 100, MaxDuration: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "10 requests", func(p agent.Progress) bool { return p.Sent >= 10 })
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if records, _, err := c.Records(ctx); err != nil || len(records) < 10 {
		t.Errorf("%d records, %v", len(records), err)
	}
}
