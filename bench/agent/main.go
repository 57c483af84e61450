// Command agent benchmarks verify's agent (`rollguard agent`) driven
// through its client, as verify drives it, against vegeta on the same
// loopback target in the same run.
//
// For each requested rate, a fresh agent process is started (an agent runs
// once), asked for an open-loop run of -duration with a new connection per
// request, left to end at that duration by itself, and its records fetched.
// It reports:
//   - scheduled: rate*duration, the requests the schedule holds;
//   - sent: the agent's own count at the end (/progress); target: the
//     requests the target server counted during the run; records: the
//     records /records returned, checked against the stream's counts by
//     the client. Every request recorded means records == sent == target.
//     Sent can fall short of scheduled only when the agent is behind its
//     schedule at the run's maxDuration, where it stops sending;
//   - achieved: requests per second from the first send to the last,
//     (n-1)/(last start - first start), the definition bench/traffic uses;
//   - p99 lag: the 99th percentile of start - intended time;
//   - the /records stream's size and the time it took.
//
// vegeta attack gets the same rate, duration, target and mode (keep-alive
// off), 10 workers growing to 10000 like the engine's pool, and the same
// 5s timeout; its achieved rate is computed the same way from the
// timestamps of its results (vegeta encode -to json). The two alternate
// which goes first at each rate; -runs repeats and reports medians.
//
// The target and each agent are their own processes, as vegeta is, so the
// tools share the machine alike. Everything is on 127.0.0.1, and every run
// is bounded in count (rate*duration) and time.
//
// Run it through bench/agent/run.sh.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rollguard/rollguard/bench/internal/benchutil"
	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/traffic"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serve()
		return
	}
	rollguard := flag.String("rollguard", ".cache/bench-agent/rollguard", "rollguard binary (its agent command is measured)")
	vegeta := flag.String("vegeta", ".cache/bin/vegeta", "vegeta binary")
	ratesFlag := flag.String("rates", "200,1000,4000", "requested rates, requests per second")
	duration := flag.Duration("duration", 3*time.Second, "length of each run")
	runs := flag.Int("runs", 1, "runs per tool and rate; medians are reported")
	flag.Parse()

	rates, err := benchutil.ParseRates(*ratesFlag, false)
	runsErr, requestsErr := benchutil.CheckRuns(*runs), benchutil.CheckRequests(rates, *duration)
	switch {
	case err != nil:
		fail(err)
	case *duration <= 0 || *duration > benchutil.MaxDuration:
		fail(fmt.Errorf("-duration %s: want more than 0 and at most %s", *duration, benchutil.MaxDuration))
	case runsErr != nil:
		fail(runsErr)
	case requestsErr != nil:
		fail(requestsErr)
	}
	env, err := benchutil.Setup("agent")
	if err != nil {
		fail(err)
	}
	defer env.Close()
	tmp, addr := env.Tmp, env.Addr

	began := time.Now()
	fmt.Printf("rollguard agent (driven through pkg/agent's client) vs vegeta %s, open loop, new connection per request, loopback HTTP target %s\n", benchutil.ModuleVersion(*vegeta), addr)
	fmt.Printf("%d CPUs, load average at start: %s; each run %s, %d run(s) per tool and rate, medians\n\n", runtime.NumCPU(), benchutil.LoadAvg(), *duration, *runs)

	var ours, theirs = map[int][]agentRun{}, map[int][]vegetaRun{}
	for run := 0; run < *runs; run++ {
		for i, rate := range rates {
			agentFirst := (run+i)%2 == 0
			for k := 0; k < 2; k++ {
				if (k == 0) == agentFirst {
					r, err := runAgent(*rollguard, addr, rate, *duration)
					if err != nil {
						fail(fmt.Errorf("agent, %d req/s: %w", rate, err))
					}
					ours[rate] = append(ours[rate], r)
				} else {
					a, err := runVegeta(*vegeta, tmp, addr, rate, *duration)
					if err != nil {
						fail(fmt.Errorf("vegeta, %d req/s: %w", rate, err))
					}
					theirs[rate] = append(theirs[rate], a)
				}
			}
		}
	}

	fmt.Printf("%9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %11s\n", "requested", "scheduled", "sent", "target", "records", "errors",
		"achieved", "/request", "p99 lag", "veg sent", "vegeta", "agent/veg", "records in")
	allRecorded, behind := true, false
	for _, rate := range rates {
		rs := ours[rate]
		a := benchutil.MedianOf(rs, func(r agentRun) float64 { return r.achieved })
		v := benchutil.MedianOf(theirs[rate], func(r vegetaRun) float64 { return r.achieved })
		vsent := benchutil.MedianOf(theirs[rate], func(r vegetaRun) float64 { return float64(r.sent) })
		last := rs[len(rs)-1]
		for _, r := range rs {
			allRecorded = allRecorded && r.records == r.sent && r.sent == r.target
			behind = behind || r.sent < r.scheduled
		}
		fmt.Printf("%9d %9d %9d %9d %9d %9d %9.0f %8.3fx %9s %9.0f %9.0f %8.3fx %11s\n", rate, last.scheduled,
			int(benchutil.MedianOf(rs, func(r agentRun) float64 { return float64(r.sent) })),
			int(benchutil.MedianOf(rs, func(r agentRun) float64 { return float64(r.target) })),
			int(benchutil.MedianOf(rs, func(r agentRun) float64 { return float64(r.records) })),
			int(benchutil.MedianOf(rs, func(r agentRun) float64 { return float64(r.errors) })),
			a, a/float64(rate), benchutil.Millis(benchutil.MedianOf(rs, func(r agentRun) float64 { return float64(r.p99) })), vsent, v, a/v,
			fmt.Sprintf("%.2fMB/%s", float64(last.bytes)/1e6, last.fetch.Round(time.Millisecond)))
	}
	fmt.Printf("\nachieved: requests per second from the first send to the last; /request: achieved / requested;\n")
	fmt.Printf("p99 lag: of start - intended time; veg sent: the requests vegeta sent in the same duration;\n")
	fmt.Printf("agent/veg: the agent's achieved rate / vegeta's; records in: the /records stream of the last run and its fetch time\n")
	if behind {
		fmt.Printf("sent < scheduled: the agent was behind its schedule when its maxDuration came, and stopped sending there, as verify's runs do\n")
	}
	if allRecorded {
		fmt.Printf("every request recorded: in every run, records == sent == requests the target counted\n")
	} else {
		fmt.Printf("NOT every request recorded: see the sent and records columns\n")
	}
	fmt.Printf("load average at end: %s; took %s\n", benchutil.LoadAvg(), time.Since(began).Round(time.Second))
	if !allRecorded {
		os.Exit(1)
	}
}

// agentRun is one run of one agent.
type agentRun struct {
	scheduled, sent, target, records, errors int
	achieved                                 float64
	p99                                      time.Duration
	bytes                                    int64
	fetch                                    time.Duration
}

var listening = regexp.MustCompile(`listening on (\S+);`)

// runAgent starts `rollguard agent` on a free loopback port, runs it at
// rate for d through the client, lets the run end by itself and fetches
// every record.
func runAgent(bin, target string, rate int, d time.Duration) (agentRun, error) {
	var out agentRun
	ctx, cancel := context.WithTimeout(context.Background(), d+benchutil.RunSlack)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "agent", "--listen", "127.0.0.1:0", "--max-run", (d + benchutil.RunSlack).String(), "--shutdown-grace", "0s")
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return out, err
	}
	if err := cmd.Start(); err != nil {
		return out, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	first, err := bufio.NewReader(stdout).ReadString('\n')
	m := listening.FindStringSubmatch(first)
	if err != nil || m == nil {
		return out, fmt.Errorf("no startup line from the agent: %q, %v", first, err)
	}
	var body atomic.Int64
	c := &agent.Client{Base: "http://" + m[1], Name: "bench", HTTP: &http.Client{Transport: counting{http.DefaultTransport, &body}}}

	before, err := count(target)
	if err != nil {
		return out, err
	}
	cfg := agent.StartConfig{Target: target, Mode: traffic.ModeHTTP, Rate: float64(rate), MaxDuration: d,
		ConnectTimeout: benchutil.Timeout, ResponseTimeout: benchutil.Timeout}
	if err := c.Start(ctx, cfg); err != nil {
		return out, err
	}
	var p agent.Progress
	for {
		if p, err = c.Progress(ctx); err != nil || p.Done {
			break
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return out, err
	}
	after, err := count(target)
	if err != nil {
		return out, err
	}
	out.target = after - before
	body.Store(0)
	t0 := time.Now()
	records, _, err := c.Records(ctx)
	if err != nil {
		return out, err
	}
	out.fetch, out.bytes = time.Since(t0), body.Load()
	out.scheduled, out.sent, out.records, out.errors = int(float64(rate)*d.Seconds()), p.Sent, len(records), p.Failed
	starts := make([]time.Time, len(records))
	lags := make([]time.Duration, len(records))
	for i, r := range records {
		starts[i], lags[i] = r.Start, r.Start.Sub(r.Intended)
	}
	out.achieved = benchutil.Achieved(starts)
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if len(lags) > 0 {
		out.p99 = lags[min(len(lags)-1, len(lags)*99/100)]
	}
	return out, nil
}

// counting counts the response body bytes a client reads.
type counting struct {
	http.RoundTripper
	n *atomic.Int64
}

func (c counting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.RoundTripper.RoundTrip(req)
	if err == nil {
		resp.Body = countBody{resp.Body, c.n}
	}
	return resp, err
}

type countBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}

// vegetaRun is one run of vegeta.
type vegetaRun struct {
	sent     int
	achieved float64
}

// runVegeta runs vegeta attack at rate for d and returns the requests it
// sent and its achieved rate, from its results' timestamps.
func runVegeta(bin, tmp, target string, rate int, d time.Duration) (vegetaRun, error) {
	results, err := benchutil.VegetaOpen(bin, tmp, target, rate, d, false)
	if err != nil {
		return vegetaRun{}, err
	}
	starts := make([]time.Time, len(results))
	for i, r := range results {
		starts[i] = r.Timestamp
	}
	return vegetaRun{sent: len(starts), achieved: benchutil.Achieved(starts)}, nil
}

// serve is the target: it answers "ok" and counts the requests it
// answered, which GET /count returns (and does not count).
func serve() {
	var n atomic.Int64
	err := benchutil.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/count" {
			fmt.Fprintln(w, n.Load())
			return
		}
		n.Add(1)
		w.Write([]byte("ok\n"))
	}))
	if err != nil {
		fail(err)
	}
}

// count asks the target how many requests it has answered.
func count(target string) (int, error) {
	resp, err := http.Get("http://" + target + "/count")
	if err != nil {
		return 0, fmt.Errorf("target count: %w", err)
	}
	defer resp.Body.Close()
	var n int
	if _, err := fmt.Fscan(resp.Body, &n); err != nil {
		return 0, fmt.Errorf("target count: %w", err)
	}
	return n, nil
}

func fail(err error) { benchutil.Fail("bench/agent", err) }
