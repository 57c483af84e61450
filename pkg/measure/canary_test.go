package measure

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func state(t *testing.T, c *Canary) CanaryState {
	t.Helper()
	w := get(t, c, http.MethodGet, "/state")
	var st CanaryState
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("GET /state: %v: %s", err, w.Body)
	}
	return st
}

// TestCanaryLatencies: removal is the last request after the preStop call
// minus the call, addition the first request minus the first readiness
// answer, per node, in the canary's clock; a node that stopped before
// the call has a negative removal.
func TestCanaryLatencies(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c := NewCanary(time.Minute)
	c.now = clk.now
	at := func(d time.Duration) { clk.t = time.Unix(1000, 0).Add(d) }

	at(100 * time.Millisecond)
	get(t, c, http.MethodGet, "/readyz")
	at(200 * time.Millisecond)
	get(t, c, http.MethodGet, "/readyz") // only the first answer counts
	if st := state(t, c); !st.Ready || st.PreStop || len(st.Nodes) != 0 {
		t.Fatalf("after readiness: %+v", st)
	}
	at(400 * time.Millisecond)
	get(t, c, http.MethodGet, "/m/a")
	at(900 * time.Millisecond)
	get(t, c, http.MethodGet, "/m/b")
	at(2 * time.Second)
	get(t, c, http.MethodGet, "/m/b") // b stops before the preStop call
	at(3 * time.Second)
	go get(t, c, http.MethodGet, "/prestop")
	deadline := time.Now().Add(5 * time.Second)
	for !state(t, c).PreStop {
		if time.Now().After(deadline) {
			t.Fatal("the preStop call was not recorded")
		}
		time.Sleep(time.Millisecond)
	}
	at(3500 * time.Millisecond)
	get(t, c, http.MethodGet, "/m/a")
	at(4200 * time.Millisecond)
	get(t, c, http.MethodGet, "/m/a")
	at(5 * time.Second)
	st := state(t, c)
	a, b := st.Nodes["a"], st.Nodes["b"]
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"a removal", *a.Removal, 1200 * time.Millisecond},
		{"b removal", *b.Removal, -time.Second},
		{"a addition", *a.Addition, 300 * time.Millisecond},
		{"b addition", *b.Addition, 800 * time.Millisecond},
		{"a idle", a.Idle, 800 * time.Millisecond},
		{"b idle", b.Idle, 3 * time.Second},
		{"since preStop", st.SincePreStop, 2 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	if a.Count != 3 || a.AfterPreStop != 2 || b.Count != 2 || b.AfterPreStop != 0 {
		t.Errorf("counts: a %+v, b %+v", a, b)
	}
}

// TestCanaryPreStopHolds: the hook answers when released, or when the
// hold is over, not before.
func TestCanaryPreStopHolds(t *testing.T) {
	t.Parallel()
	c := NewCanary(time.Hour)
	done := make(chan struct{})
	go func() { get(t, c, http.MethodGet, "/prestop"); close(done) }()
	select {
	case <-done:
		t.Fatal("the preStop hook answered before it was released")
	case <-time.After(50 * time.Millisecond):
	}
	get(t, c, http.MethodPost, "/release")
	get(t, c, http.MethodPost, "/release") // twice is harmless
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the preStop hook did not answer after /release")
	}

	short := NewCanary(30 * time.Millisecond)
	start := time.Now()
	get(t, short, http.MethodGet, "/prestop")
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("the hook answered after %s, before its hold", d)
	}
}

// TestCanaryBoundsNodes: a canary remembers at most maxNodes node names.
func TestCanaryBoundsNodes(t *testing.T) {
	t.Parallel()
	c := NewCanary(time.Minute)
	for i := range maxNodes + 5 {
		get(t, c, http.MethodGet, "/m/n"+time.Duration(i).String())
	}
	if n := len(c.State().Nodes); n != maxNodes {
		t.Errorf("%d nodes remembered, want %d", n, maxNodes)
	}
	if w := get(t, c, http.MethodGet, "/nothing"); w.Code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d", w.Code)
	}
}
