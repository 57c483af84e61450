// Package benchutil implements what bench/agent and bench/traffic share:
// the bounds on one invocation and the checks of their flags, the loopback
// target each runs as its own process, vegeta's open-loop attack, and the
// few figures and formats both reports print.
//
// It measures nothing by itself: each bench decides what it runs and what
// it reports, and keeps its own output.
package benchutil

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Bounds on what one invocation may ask for.
const (
	MaxRate     = 20000
	MaxDuration = 10 * time.Second
	MaxRuns     = 9
	MaxRequests = 200_000 // per measurement: rate*duration
	RunSlack    = 30 * time.Second
	MaxWorkers  = 10000 // the engine's default open-loop pool; vegeta gets the same cap
	Timeout     = 5 * time.Second
)

// ParseRates reads -rates, a comma-separated list of 1 to 12 rates from 1
// to MaxRate; with increasing, each must be larger than the one before.
func ParseRates(s string, increasing bool) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 1 || r > MaxRate {
			return nil, fmt.Errorf("-rates: %q is not a rate from 1 to %d", f, MaxRate)
		}
		if increasing && len(rates) > 0 && r <= rates[len(rates)-1] {
			return nil, fmt.Errorf("-rates: want increasing rates")
		}
		rates = append(rates, r)
	}
	if len(rates) == 0 || len(rates) > 12 {
		return nil, fmt.Errorf("-rates: want 1 to 12 rates")
	}
	return rates, nil
}

// CheckRuns checks -runs against MaxRuns.
func CheckRuns(runs int) error {
	if runs < 1 || runs > MaxRuns {
		return fmt.Errorf("-runs %d: want 1 to %d", runs, MaxRuns)
	}
	return nil
}

// CheckRequests checks that no rate asks for more than MaxRequests in d,
// so that every measurement is bounded in count as well as in time.
func CheckRequests(rates []int, d time.Duration) error {
	for _, r := range rates {
		if float64(r)*d.Seconds() > MaxRequests {
			return fmt.Errorf("%d req/s for %s is more than %d requests", r, d, MaxRequests)
		}
	}
	return nil
}

// Median is the median of xs, the mean of the middle two when their number
// is even. xs is left as it was.
func Median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// MedianOf is the median of f over runs.
func MedianOf[T any](runs []T, f func(T) float64) float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	return Median(xs)
}

// Achieved is requests per second from the first start to the last,
// (n-1)/(last - first), the one definition both benches use; 0 with fewer
// than two starts.
func Achieved(starts []time.Time) float64 {
	if len(starts) < 2 {
		return 0
	}
	first, last := starts[0], starts[0]
	for _, s := range starts {
		if s.Before(first) {
			first = s
		}
		if s.After(last) {
			last = s
		}
	}
	return float64(len(starts)-1) / last.Sub(first).Seconds()
}

// Millis formats nanoseconds as milliseconds with two decimals.
func Millis(ns float64) string { return fmt.Sprintf("%.2fms", ns/1e6) }

// LoadAvg is the machine's 1, 5 and 15 minute load averages, or "unknown".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// ModuleVersion is the version of the Go module a binary was built from.
func ModuleVersion(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil || bi.Main.Version == "" {
		return "(version unknown)"
	}
	return bi.Main.Version
}

// Fail prints err after the bench's name to stderr and exits 2, the exit
// code of a run that could not measure.
func Fail(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(2)
}
