package benchutil

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// TestMain lets the test binary be Setup's target: Setup starts
// os.Executable() with the argument "serve".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok\n") })); err != nil {
			Fail("benchutil test target", err)
		}
		return
	}
	os.Exit(m.Run())
}

func TestParseRates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in         string
		increasing bool
		want       []int
		err        string
	}{
		{in: "500,1000, 2000", increasing: true, want: []int{500, 1000, 2000}},
		{in: "4000,200", want: []int{4000, 200}},
		{in: "4000,200", increasing: true, err: "-rates: want increasing rates"},
		{in: "1000,1000", increasing: true, err: "-rates: want increasing rates"},
		{in: "0", err: `-rates: "0" is not a rate from 1 to 20000`},
		{in: "20001", err: `-rates: "20001" is not a rate from 1 to 20000`},
		{in: "", err: `-rates: "" is not a rate from 1 to 20000`},
		{in: "1,x", err: `-rates: "x" is not a rate from 1 to 20000`},
		{in: "1,2,3,4,5,6,7,8,9,10,11,12", increasing: true, want: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{in: "1,2,3,4,5,6,7,8,9,10,11,12,13", err: "-rates: want 1 to 12 rates"},
	} {
		got, err := ParseRates(tc.in, tc.increasing)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseRates(%q, %v) = %v, %v; want error %q", tc.in, tc.increasing, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseRates(%q, %v) = %v, %v; want %v", tc.in, tc.increasing, got, err, tc.want)
		}
	}
}

func TestChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"runs 1", CheckRuns(1), ""},
		{"runs 9", CheckRuns(9), ""},
		{"runs 0", CheckRuns(0), "-runs 0: want 1 to 9"},
		{"runs 10", CheckRuns(10), "-runs 10: want 1 to 9"},
		{"requests at the bound", CheckRequests([]int{1000, 20000}, 10*time.Second), ""},
		{"requests over", CheckRequests([]int{1000, 20000}, 11*time.Second), "20000 req/s for 11s is more than 200000 requests"},
		{"no rates", CheckRequests(nil, time.Hour), ""},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFigures(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	type run struct{ x float64 }
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"median odd", Median([]float64{3, 1, 2}), 2},
		{"median even", Median([]float64{4, 1, 3, 2}), 2.5},
		{"median one", Median([]float64{7}), 7},
		{"median of", MedianOf([]run{{5}, {1}, {9}}, func(r run) float64 { return r.x }), 5},
		{"achieved", Achieved([]time.Time{t0.Add(time.Second), t0, t0.Add(500 * time.Millisecond)}), 2},
		{"achieved one", Achieved([]time.Time{t0}), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	xs := []float64{3, 1, 2}
	Median(xs)
	if !slices.Equal(xs, []float64{3, 1, 2}) {
		t.Errorf("Median changed its argument: %v", xs)
	}
	if got := Millis(1234567); got != "1.23ms" {
		t.Errorf("Millis(1234567) = %q, want 1.23ms", got)
	}
}

func TestVegetaResultFailed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    VegetaResult
		want bool
	}{
		{VegetaResult{Code: 200}, false},
		{VegetaResult{Code: 399}, false},
		{VegetaResult{Code: 400}, true},
		{VegetaResult{Code: 199}, true},
		{VegetaResult{Code: 0, Error: "dial tcp: connection refused"}, true},
		{VegetaResult{Code: 200, Error: "timeout"}, true},
	} {
		if got := tc.r.Failed(); got != tc.want {
			t.Errorf("%+v.Failed() = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestSetup(t *testing.T) {
	t.Parallel()
	env, err := Setup("benchutil-test")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close() // again after the Close below: a no-op then
	resp, err := http.Get("http://" + env.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "ok\n" {
		t.Fatalf("target answered %q, %v; want \"ok\\n\"", body, err)
	}
	if fi, err := os.Stat(env.Tmp); err != nil || !fi.IsDir() {
		t.Fatalf("temporary folder %s: %v", env.Tmp, err)
	}
	env.Close()
	if _, err := os.Stat(env.Tmp); !os.IsNotExist(err) {
		t.Errorf("Close left %s: %v", env.Tmp, err)
	}
	if _, err := http.Get("http://" + env.Addr + "/"); err == nil {
		t.Errorf("the target still answers after Close")
	}
}

// TestSetupTargetEnds checks that the target ends by itself when the bench
// is gone without Close (its stdin closes), as after os.Exit.
func TestSetupTargetEnds(t *testing.T) {
	t.Parallel()
	env, err := Setup("benchutil-test")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	done := make(chan error, 1)
	go func() { done <- env.srv.Wait() }()
	env.alive.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("target: %v, want a clean exit", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the target still runs 10s after its stdin closed")
	}
}
