// Command traffic benchmarks rollguard's traffic engine against vegeta on
// the same loopback target in the same run: the sustained request rate
// with a new connection per request and with keep-alive, and the ratio.
//
// Each side is its own process (the target too), so they share the
// machine alike. Run it through bench/traffic/run.sh.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

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
		}
	}
	vegeta := flag.String("vegeta", ".cache/bin/vegeta", "vegeta binary")
	duration := flag.Duration("duration", 5*time.Second, "length of each measurement")
	workers := flag.Int("workers", 32, "concurrent workers for both tools")
	runs := flag.Int("runs", 3, "measurements per tool and mode; the median is reported")
	flag.Parse()

	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	srv := exec.Command(self, "serve")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := srv.Start(); err != nil {
		fail(err)
	}
	defer srv.Process.Kill()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		fail(fmt.Errorf("target server: %w", err))
	}
	addr = strings.TrimSpace(addr)

	fmt.Printf("traffic engine vs vegeta v12.13.0: loopback HTTP target, %d workers each, %s per run, median of %d\n\n", *workers, *duration, *runs)
	fmt.Printf("%-16s %16s %14s %7s\n", "mode", "rollguard req/s", "vegeta req/s", "ratio")
	for _, mode := range []struct {
		name      string
		keepalive bool
	}{{"new connection", false}, {"keep-alive", true}} {
		var ours, theirs []float64
		for i := 0; i < *runs; i++ {
			ours = append(ours, runOurs(self, addr, mode.keepalive, *duration, *workers))
			theirs = append(theirs, runVegeta(*vegeta, addr, mode.keepalive, *duration, *workers))
		}
		o, v := median(ours), median(theirs)
		fmt.Printf("%-16s %16.0f %14.0f %6.2fx\n", mode.name, o, v, o/v)
	}
}

func serve() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	fmt.Println(l.Addr().String())
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
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
		Dial: func(ctx context.Context, _ int, _ int64) (net.Conn, traffic.Pick, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", *addr)
			return c, traffic.Pick{}, err
		}}, sum)
	if err != nil && err != context.DeadlineExceeded {
		fail(err)
	}
	fmt.Printf("%f\n", float64(sum.ByClass[traffic.OK])/time.Since(start).Seconds())
}

func runOurs(self, addr string, keepalive bool, d time.Duration, workers int) float64 {
	out, err := exec.Command(self, "load", "-addr", addr, fmt.Sprintf("-keepalive=%v", keepalive),
		"-duration", d.String(), "-workers", fmt.Sprint(workers)).Output()
	if err != nil {
		fail(fmt.Errorf("engine: %w", err))
	}
	var rate float64
	fmt.Sscan(string(out), &rate)
	return rate
}

func runVegeta(bin, addr string, keepalive bool, d time.Duration, workers int) float64 {
	attack := exec.Command(bin, "attack", "-rate=0", fmt.Sprintf("-workers=%d", workers), fmt.Sprintf("-max-workers=%d", workers),
		"-duration="+d.String(), fmt.Sprintf("-keepalive=%v", keepalive))
	attack.Stdin = strings.NewReader("GET http://" + addr + "/\n")
	report := exec.Command(bin, "report", "-type=json")
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

func median(xs []float64) float64 {
	for i := range xs {
		for j := i + 1; j < len(xs); j++ {
			if xs[j] < xs[i] {
				xs[i], xs[j] = xs[j], xs[i]
			}
		}
	}
	return xs[len(xs)/2]
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "bench/traffic: %v\n", err)
	os.Exit(2)
}
