// Command traffic benchmarks rollguard's traffic engine against vegeta on
// the same loopback target in the same run.
//
// The main measurement is open loop: both tools are asked for the same
// fixed rates, and for every request the "send lag" is taken, the time it
// actually started minus the time the schedule meant it to start. A tool
// sustains a rate when at least 99% of its requests start within 5 ms of
// their intended time (-lag, -share). The highest sustained rate of each
// tool, per mode (a new connection per request, keep-alive), and their
// ratio are the result.
//
// Where the times come from:
//   - engine: each traffic.Record carries Intended (run start + seq/rate,
//     stamped by the scheduler) and Start (taken when a worker begins the
//     request, before it dials). lag = Start - Intended.
//   - vegeta: each result carries Seq and Timestamp, taken together under
//     one lock when a worker begins the hit, before the request is built
//     (lib/attack.go, hit). Vegeta does not record the intended time. Its
//     ConstantPacer releases tick k (k = 0, 1, ...) no earlier than attack
//     start + (k+1)*interval, interval = 1s/rate in whole nanoseconds
//     (lib/pacer.go), and the result with seq k is stamped after at least
//     k+1 ticks were released, so it is never early. The attack start is
//     not in the results, so the schedule is placed as late as that allows:
//     intended(seq k) = T0 + k*interval with T0 = min over all results of
//     (Timestamp - seq*interval). No lag is then negative, at least one is
//     zero, and each is at most the true lag: the derivation can only
//     flatter vegeta, never penalise it.
//     As a check, the engine's lag is also derived this way from its Seq
//     and Start alone, and the largest difference at p99 is printed.
//
// Each tool, and the target, is its own process, so they share the machine
// alike. The two tools alternate which goes first at each rate, runs are
// repeated (-runs) and medians reported. Everything is on 127.0.0.1, and
// every run is bounded in count (rate*duration) and time.
//
// The earlier closed-loop throughput comparison (as many requests as 32
// workers can send) follows the sweep; -closed-loop=false skips it.
//
// Run it through bench/traffic/run.sh.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollguard/rollguard/bench/internal/benchutil"
	"github.com/rollguard/rollguard/pkg/traffic"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			serve()
			return
		case "load":
			load(os.Args[2:])
			return
		case "open":
			open(os.Args[2:])
			return
		}
	}
	vegeta := flag.String("vegeta", ".cache/bin/vegeta", "vegeta binary")
	ratesFlag := flag.String("rates", "500,1000,2000,4000,8000", "open-loop rates to sweep, requests per second")
	duration := flag.Duration("duration", 3*time.Second, "length of each open-loop measurement")
	runs := flag.Int("runs", 3, "measurements per tool, mode and rate; medians are reported")
	lagLimit := flag.Duration("lag", 5*time.Millisecond, "a request is on time when its send lag is at most this")
	share := flag.Float64("share", 99, "percent of requests that must be on time for a rate to count as sustained")
	loose := flag.Float64("loose-share", 90, "a second, looser share, also reported (a loaded machine may meet -share at no rate)")
	closed := flag.Bool("closed-loop", true, "also run the closed-loop throughput comparison")
	closedDuration := flag.Duration("closed-duration", 2*time.Second, "length of each closed-loop measurement")
	workers := flag.Int("workers", 32, "closed-loop workers for both tools")
	flag.Parse()

	rates, err := benchutil.ParseRates(*ratesFlag, true)
	runsErr, requestsErr := benchutil.CheckRuns(*runs), benchutil.CheckRequests(rates, *duration)
	switch {
	case err != nil:
		fail(err)
	case *duration <= 0 || *duration > benchutil.MaxDuration || *closedDuration <= 0 || *closedDuration > benchutil.MaxDuration:
		fail(fmt.Errorf("durations must be more than 0 and at most %s", benchutil.MaxDuration))
	case runsErr != nil:
		fail(runsErr)
	case *workers < 1 || *workers > 1000:
		fail(fmt.Errorf("-workers %d: want 1 to 1000", *workers))
	case *share <= 0 || *share > 100 || *loose <= 0 || *loose > 100 || *lagLimit <= 0:
		fail(fmt.Errorf("-share and -loose-share must be in (0, 100] and -lag positive"))
	case requestsErr != nil:
		fail(requestsErr)
	}

	env, err := benchutil.Setup("traffic")
	if err != nil {
		fail(err)
	}
	defer env.Close()
	self, tmp, addr := env.Self, env.Tmp, env.Addr

	began := time.Now()
	fmt.Printf("traffic engine vs vegeta v12.13.0, open loop, loopback HTTP target %s\n", addr)
	fmt.Printf("%d CPUs, load average at start: %s\n", runtime.NumCPU(), benchutil.LoadAvg())
	fmt.Printf("each measurement %s; %d runs per tool, mode and rate, alternating which tool goes first; medians over runs\n", *duration, *runs)
	fmt.Printf("send lag = actual send start - intended send time; a rate is sustained when the median share of requests sent within %s is at least %g%%\n", *lagLimit, *share)
	fmt.Printf("sent: share of the rate*duration scheduled requests that were sent (vegeta stops at the duration even when behind;\n")
	fmt.Printf("the engine sends every one, late); within: share of the scheduled requests sent within %s (unsent count as late);\n", *lagLimit)
	fmt.Printf("lags are of the requests sent; runs>= counts the runs that met %g%% on their own; errors are failed requests\n\n", *share)

	type key struct {
		tool, mode string
		rate       int
	}
	results := map[key][]stats{}
	var worstCheck time.Duration // engine: own stamps vs the vegeta-style derivation
	for run := 0; run < *runs; run++ {
		for _, m := range modes {
			for i, rate := range rates {
				tools := []string{"engine", "vegeta"}
				if (run+i)%2 == 1 {
					tools[0], tools[1] = tools[1], tools[0]
				}
				for _, tool := range tools {
					var s stats
					var err error
					if tool == "engine" {
						s, err = openEngine(self, tmp, addr, rate, *duration, m.keepalive, *lagLimit)
						worstCheck = max(worstCheck, s.checkDiff)
					} else {
						s, err = openVegeta(*vegeta, tmp, addr, rate, *duration, m.keepalive, *lagLimit)
					}
					if err != nil {
						fail(fmt.Errorf("%s, %s, %d req/s: %w", tool, m.name, rate, err))
					}
					k := key{tool, m.name, rate}
					results[k] = append(results[k], s)
				}
			}
		}
	}

	best := map[key][2]int{} // highest sustained at -share and at -loose-share
	for _, m := range modes {
		for _, tool := range []string{"engine", "vegeta"} {
			fmt.Printf("%s, %s\n", toolName[tool], m.name)
			fmt.Printf("%9s %7s %9s %9s %9s %9s %10s %8s %7s\n", "req/s", "sent", "achieved", "p50 lag", "p99 lag", "max lag", "within", "runs>=", "errors")
			var b [2]int
			broken := [2]bool{}
			for _, rate := range rates {
				rs := results[key{tool, m.name, rate}]
				within := benchutil.MedianOf(rs, func(s stats) float64 { return s.within })
				pass := 0
				for _, s := range rs {
					if s.within >= *share {
						pass++
					}
				}
				fmt.Printf("%9d %6.1f%% %9.0f %9s %9s %9s %9.2f%% %6d/%d %7.0f\n", rate,
					benchutil.MedianOf(rs, func(s stats) float64 { return s.sentShare }),
					benchutil.MedianOf(rs, func(s stats) float64 { return s.achieved }),
					benchutil.Millis(benchutil.MedianOf(rs, func(s stats) float64 { return float64(s.p50) })),
					benchutil.Millis(benchutil.MedianOf(rs, func(s stats) float64 { return float64(s.p99) })),
					benchutil.Millis(benchutil.MedianOf(rs, func(s stats) float64 { return float64(s.max) })),
					within, pass, len(rs),
					benchutil.MedianOf(rs, func(s stats) float64 { return float64(s.errors) }))
				for i, limit := range []float64{*share, *loose} {
					if within >= limit && !broken[i] {
						b[i] = rate
					} else {
						broken[i] = true
					}
				}
			}
			best[key{tool: tool, mode: m.name}] = b
			fmt.Printf("highest sustained rate: %s (at %g%%: %s)\n\n", rateText(b[0], rates[0]), *loose, rateText(b[1], rates[0]))
		}
	}

	fmt.Printf("highest sustained rate: every swept rate up to it has a median share of requests sent within %s of at least %g%% (and, looser, %g%%)\n", *lagLimit, *share, *loose)
	fmt.Printf("%-16s %8s %8s %8s   %8s %8s %8s\n", "", "engine", "vegeta", "ratio", "engine", "vegeta", "ratio")
	fmt.Printf("%-16s %26s   %26s\n", "mode", fmt.Sprintf("at %g%%", *share), fmt.Sprintf("at %g%%", *loose))
	for _, m := range modes {
		e, v := best[key{tool: "engine", mode: m.name}], best[key{tool: "vegeta", mode: m.name}]
		fmt.Printf("%-16s", m.name)
		for i := range 2 {
			ratio := "n/a"
			if e[i] > 0 && v[i] > 0 {
				ratio = fmt.Sprintf("%.2fx", float64(e[i])/float64(v[i]))
			}
			fmt.Printf(" %8s %8s %8s  ", rateText(e[i], rates[0]), rateText(v[i], rates[0]), ratio)
		}
		fmt.Println()
	}
	fmt.Printf("(the ratio is only as fine as the swept rates: -rates)\n")
	fmt.Printf("check: the engine's lag from its own Intended stamps and from the vegeta-style derivation (latest T0 + seq/rate) differ by at most %s at p99\n", benchutil.Millis(float64(worstCheck)))

	if *closed {
		fmt.Printf("\nclosed loop: as many requests as %d workers send, %s per run, median of %d\n", *workers, *closedDuration, *runs)
		fmt.Printf("%-16s %16s %14s %7s\n", "mode", "rollguard req/s", "vegeta req/s", "ratio")
		for _, m := range modes {
			var ours, theirs []float64
			for i := 0; i < *runs; i++ {
				ours = append(ours, runOurs(self, addr, m.keepalive, *closedDuration, *workers))
				theirs = append(theirs, runVegeta(*vegeta, addr, m.keepalive, *closedDuration, *workers))
			}
			o, v := benchutil.Median(ours), benchutil.Median(theirs)
			fmt.Printf("%-16s %16.0f %14.0f %6.2fx\n", m.name, o, v, o/v)
		}
	}
	fmt.Printf("\nload average at end: %s; took %s\n", benchutil.LoadAvg(), time.Since(began).Round(time.Second))
}

var modes = []struct {
	name      string
	keepalive bool
}{{"new connection", false}, {"keep-alive", true}}

var toolName = map[string]string{"engine": "rollguard engine", "vegeta": "vegeta v12.13.0"}

// stats is one measurement of one tool at one rate.
type stats struct {
	sent, errors  int
	sentShare     float64 // percent of the scheduled requests that were sent
	achieved      float64 // requests sent per second, first send to last
	p50, p99, max time.Duration
	within        float64       // percent with lag <= the limit
	checkDiff     time.Duration // engine only: |p99 own - p99 derived|
}

// sample is one request: its sequence number, when it started, and (the
// engine only) when it was meant to.
type sample struct {
	seq      int64
	sent     time.Time
	intended time.Time
	failed   bool
}

// summarize computes the send lags. With own, lags use the samples'
// intended times; without, intended(seq) = T0 + seq*interval, with T0 the
// latest start for which no request was sent early (see the package doc).
//
// The share on time is of the requests the schedule asked for
// (rate*duration), not of those sent: vegeta ends its attack at the
// duration even when it is behind, and a request never sent was not sent
// on time. The engine sends every scheduled request, however late.
func summarize(samples []sample, rate int, d time.Duration, limit time.Duration, own bool) (stats, error) {
	var s stats
	if len(samples) < 2 {
		return s, fmt.Errorf("%d requests recorded", len(samples))
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].seq < samples[j].seq })
	interval := time.Duration(int64(time.Second) / int64(rate))
	anchor := samples[0].sent
	for _, x := range samples {
		if t := x.sent.Add(-time.Duration(x.seq) * interval); t.Before(anchor) {
			anchor = t
		}
	}
	lags := make([]time.Duration, 0, len(samples))
	starts := make([]time.Time, 0, len(samples))
	onTime := 0
	for _, x := range samples {
		intended := anchor.Add(time.Duration(x.seq) * interval)
		if own {
			intended = x.intended
		}
		lag := x.sent.Sub(intended)
		lags = append(lags, lag)
		starts = append(starts, x.sent)
		if lag <= limit {
			onTime++
		}
		if x.failed {
			s.errors++
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	s.sent = len(samples)
	s.achieved = benchutil.Achieved(starts)
	s.p50, s.p99, s.max = rank(lags, 50), rank(lags, 99), lags[len(lags)-1]
	scheduled := max(len(samples), int(float64(rate)*d.Seconds()))
	s.within = 100 * float64(onTime) / float64(scheduled)
	s.sentShare = 100 * float64(len(samples)) / float64(int(float64(rate)*d.Seconds()))
	return s, nil
}

// rank is the nearest-rank percentile of sorted values.
func rank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// openEngine runs the engine at a fixed rate in its own process, which
// writes every record as a JSON line, and reads the records back.
func openEngine(self, tmp, addr string, rate int, d time.Duration, keepalive bool, limit time.Duration) (stats, error) {
	out := filepath.Join(tmp, "engine.jsonl")
	defer os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), d+benchutil.RunSlack)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "open", "-addr", addr, "-rate", strconv.Itoa(rate),
		"-duration", d.String(), fmt.Sprintf("-keepalive=%v", keepalive), "-out", out)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return stats{}, err
	}
	f, err := os.Open(out)
	if err != nil {
		return stats{}, err
	}
	defer f.Close()
	var samples []sample
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var r traffic.Record
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return stats{}, err
		}
		samples = append(samples, sample{seq: r.Seq, sent: r.Start, intended: r.Intended, failed: r.Class.Failed()})
	}
	own, err := summarize(samples, rate, d, limit, true)
	if err != nil {
		return own, err
	}
	derived, err := summarize(samples, rate, d, limit, false)
	if err != nil {
		return own, err
	}
	own.checkDiff = (own.p99 - derived.p99).Abs()
	return own, nil
}

// openVegeta runs vegeta attack at a fixed rate and reads each result's
// Seq and Timestamp back (benchutil.VegetaOpen).
func openVegeta(bin, tmp, addr string, rate int, d time.Duration, keepalive bool, limit time.Duration) (stats, error) {
	results, err := benchutil.VegetaOpen(bin, tmp, addr, rate, d, keepalive)
	if err != nil {
		return stats{}, err
	}
	samples := make([]sample, len(results))
	for i, r := range results {
		samples[i] = sample{seq: r.Seq, sent: r.Timestamp, failed: r.Failed()}
	}
	return summarize(samples, rate, d, limit, false)
}

// serve is the target: it answers "ok".
func serve() {
	if err := benchutil.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })); err != nil {
		fail(err)
	}
}

func dialer(addr string) traffic.Dialer {
	return func(ctx context.Context, _ int, _ int64) (net.Conn, traffic.Pick, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		return c, traffic.Pick{}, err // no pick time: Start stays when the worker began
	}
}

// open runs the engine open loop at a fixed rate and writes every record
// as a JSON line to -out (buffered, flushed at the end).
func open(args []string) {
	fs := flag.NewFlagSet("open", flag.ExitOnError)
	addr := fs.String("addr", "", "target")
	rate := fs.Int("rate", 1000, "requests per second")
	keepalive := fs.Bool("keepalive", false, "reuse connections")
	duration := fs.Duration("duration", 3*time.Second, "")
	out := fs.String("out", "", "JSON lines file")
	_ = fs.Parse(args)
	mode := traffic.ModeHTTP
	if *keepalive {
		mode = traffic.ModeKeepAlive
	}
	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	sink := traffic.NewJSONLines(w)
	err = traffic.Run(context.Background(), traffic.Config{Rate: float64(*rate), Duration: *duration, Mode: mode, Host: *addr,
		MaxWorkers: benchutil.MaxWorkers, ConnectTimeout: benchutil.Timeout, ResponseTimeout: benchutil.Timeout, Dial: dialer(*addr)}, sink)
	if err != nil {
		fail(err)
	}
	if err := w.Flush(); err != nil {
		fail(err)
	}
	if sink.Err != nil {
		fail(sink.Err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

// load runs the engine closed-loop and prints successful requests per second.
func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "", "target")
	keepalive := fs.Bool("keepalive", false, "reuse connections")
	duration := fs.Duration("duration", 5*time.Second, "")
	workers := fs.Int("workers", 32, "")
	_ = fs.Parse(args)
	mode := traffic.ModeHTTP
	if *keepalive {
		mode = traffic.ModeKeepAlive
	}
	sum := traffic.NewSummary()
	start := time.Now()
	err := traffic.Run(context.Background(), traffic.Config{Duration: *duration, Workers: *workers, Mode: mode, Host: *addr,
		Dial: dialer(*addr)}, sum)
	if err != nil && err != context.DeadlineExceeded {
		fail(err)
	}
	fmt.Printf("%f\n", float64(sum.ByClass[traffic.OK])/time.Since(start).Seconds())
}

func runOurs(self, addr string, keepalive bool, d time.Duration, workers int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d+benchutil.RunSlack)
	defer cancel()
	out, err := exec.CommandContext(ctx, self, "load", "-addr", addr, fmt.Sprintf("-keepalive=%v", keepalive),
		"-duration", d.String(), "-workers", fmt.Sprint(workers)).Output()
	if err != nil {
		fail(fmt.Errorf("engine: %w", err))
	}
	var rate float64
	fmt.Sscan(string(out), &rate)
	return rate
}

func runVegeta(bin, addr string, keepalive bool, d time.Duration, workers int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d+benchutil.RunSlack)
	defer cancel()
	attack := exec.CommandContext(ctx, bin, "attack", "-rate=0", fmt.Sprintf("-workers=%d", workers), fmt.Sprintf("-max-workers=%d", workers),
		"-duration="+d.String(), fmt.Sprintf("-keepalive=%v", keepalive))
	attack.Stdin = strings.NewReader("GET http://" + addr + "/\n")
	report := exec.CommandContext(ctx, bin, "report", "-type=json")
	pipe, err := attack.StdoutPipe()
	if err != nil {
		fail(err)
	}
	report.Stdin = pipe
	if err := attack.Start(); err != nil {
		fail(fmt.Errorf("vegeta attack: %w", err))
	}
	out, err := report.Output()
	if err != nil {
		fail(fmt.Errorf("vegeta report: %w", err))
	}
	_ = attack.Wait()
	var r struct {
		Throughput float64 `json:"throughput"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		fail(fmt.Errorf("vegeta report: %w", err))
	}
	return r.Throughput
}

func rateText(r, lowest int) string {
	if r == 0 {
		return fmt.Sprintf("<%d", lowest)
	}
	return strconv.Itoa(r)
}

func fail(err error) { benchutil.Fail("bench/traffic", err) }
