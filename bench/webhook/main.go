// Command webhook benchmarks the admission latency of rollguard's mutating
// handler against a no-op handler on the same TLS server in the same run.
//
// The server is its own process (this executable, started as `serve`): one
// controller-runtime webhook server, the one `rollguard webhook` runs
// (webhook.NewServer, TLS from a certificate directory, HTTP/2 on), on a
// free port of 127.0.0.1, with a self-signed certificate made for the run.
// It serves webhook.Admission for the real Mutator (rules.Default(), the
// default Settings, a static Lister holding one Service that selects every
// pod sent) at /mutate-pods, and for a handler that returns
// admission.Allowed("") at /noop.
//
// The client drives each path open loop at -rate requests per second for
// -duration: request i is due at start + i/rate, whether or not earlier
// ones have been answered, and its latency is taken from that intended
// time to the end of reading its response, so a stall of the server shows
// in every request due during it (no coordinated omission). It uses one
// HTTP/2 client with keep-alive, as the API server does. Every body is an
// AdmissionReview v1 of a Pod CREATE, as the API server sends it after
// its own mutating admission: see pods.go for the pods and their mix.
//
// Before the runs, each path gets a warm-up of one second at the rate (not
// measured: the TLS connection, the first requests of each ReplicaSet).
// Each run measures the no-op and the mutating path, alternating which goes
// first; -runs repeats, and the best run (lowest p99) and the median of
// each figure over the runs are printed, with the server's CPU time per
// request (its rusage, read before and after each run).
//
// Everything is on 127.0.0.1, every run is bounded in count (rate*duration)
// and in time, and every request has a 5 s timeout.
//
// Run it through bench/webhook/run.sh.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/bench/internal/benchutil"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/webhook"
)

// Bounds on one invocation.
const (
	maxDuration = 60 * time.Second
	timeout     = 5 * time.Second
	warmup      = time.Second
	target      = 1.5 // p99(mutate) / p99(no-op)
)

// Paths on the server.
const (
	noopPath  = "/noop"
	cpuPath   = "/cpu"
	statsPath = "/cache-stats"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "serve" {
		serve(os.Args[2], os.Args[3:])
		return
	}
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 20*time.Second, "length of each measurement (per handler and run)")
	runs := flag.Int("runs", 3, "runs; each measures both handlers")
	replicaSets := flag.Int("replicasets", 4, "ReplicaSets the pods come from (1 to 64)")
	cache := flag.Bool("cache", true, "the mutating handler's result cache on (false: every request runs the rules)")
	flag.Parse()
	switch {
	case *rate < 1 || *rate > benchutil.MaxRate:
		fail(fmt.Errorf("-rate %d: want 1 to %d", *rate, benchutil.MaxRate))
	case *duration <= 0 || *duration > maxDuration:
		fail(fmt.Errorf("-duration %s: want more than 0 and at most %s", *duration, maxDuration))
	case *replicaSets < 1 || *replicaSets > 64:
		fail(fmt.Errorf("-replicasets %d: want 1 to 64", *replicaSets))
	}
	if err := benchutil.CheckRuns(*runs); err != nil {
		fail(err)
	}
	if err := benchutil.CheckRequests([]int{*rate}, *duration); err != nil {
		fail(err)
	}

	tmp, err := os.MkdirTemp("", "bench-webhook-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	pool, err := makeCert(tmp)
	if err != nil {
		fail(err)
	}
	srv, addr, err := startServer(tmp, *cache)
	if err != nil {
		fail(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	// One HTTP/2 connection, reused, as the API server's webhook client
	// does (it multiplexes concurrent admissions on it).
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: timeout}
	base := "https://" + addr
	bodies := newBodies(*replicaSets)

	began := time.Now()
	fmt.Printf("rollguard's mutating admission handler vs a no-op handler, one controller-runtime webhook server (TLS, HTTP/2) at %s\n", addr)
	fmt.Printf("%d CPUs, shared machine; load average at start: %s\n", runtime.NumCPU(), benchutil.LoadAvg())
	fmt.Printf("open loop at %d req/s for %s per handler and run, %d run(s), after a %s warm-up per handler; result cache %s\n",
		*rate, *duration, *runs, warmup, map[bool]string{true: "on", false: "off"}[*cache])
	fmt.Printf("pods: %s\n\n", bodies.describe())

	proto := ""
	for _, path := range []string{noopPath, webhook.MutatePath} {
		r, err := attack(client, base, path, bodies, *rate, warmup, "")
		if err != nil {
			fail(fmt.Errorf("warm-up of %s: %w", path, err))
		}
		if r.proto != "" {
			proto = r.proto
		}
		if r.failed > 0 {
			fmt.Printf("warm-up of %s: %d of %d requests failed, first: %s\n", path, r.failed, r.n, r.firstErr)
		}
	}
	if proto != "HTTP/2.0" {
		fail(fmt.Errorf("the server answered in %s, not HTTP/2", proto))
	}
	h0, m0, _ := cacheStats(client, base)

	results := map[string][]result{}
	for run := 0; run < *runs; run++ {
		order := []string{noopPath, webhook.MutatePath}
		if run%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, path := range order {
			r, err := attack(client, base, path, bodies, *rate, *duration, base+cpuPath)
			if err != nil {
				fail(fmt.Errorf("%s, run %d: %w", path, run+1, err))
			}
			results[path] = append(results[path], r)
			fmt.Printf("run %d %-12s p50 %8s  p99 %8s  p99.9 %8s  max %8s  server CPU %6.0fµs/request  send lag p99 %8s  failed %d of %d\n",
				run+1, path, ms(r.p(50)), ms(r.p(99)), ms(r.p(99.9)), ms(r.max()), r.cpuPerRequest().Seconds()*1e6, ms(r.lagP99), r.failed, r.n)
		}
	}
	h1, m1, statsErr := cacheStats(client, base)

	fmt.Printf("\n%-22s %9s %9s %9s %9s %13s\n", "", "p50", "p99", "p99.9", "max", "CPU/request")
	best := map[string]result{}
	for _, path := range []string{noopPath, webhook.MutatePath} {
		rs := results[path]
		b := rs[0]
		for _, r := range rs[1:] {
			if r.p(99) < b.p(99) {
				b = r
			}
		}
		best[path] = b
		fmt.Printf("%-22s %9s %9s %9s %9s %11.0fµs\n", path+" best", ms(b.p(50)), ms(b.p(99)), ms(b.p(99.9)), ms(b.max()), b.cpuPerRequest().Seconds()*1e6)
		med := func(f func(result) float64) float64 { return benchutil.MedianOf(rs, f) }
		fmt.Printf("%-22s %9s %9s %9s %9s %11.0fµs\n", path+" median", msf(med(func(r result) float64 { return float64(r.p(50)) })),
			msf(med(func(r result) float64 { return float64(r.p(99)) })), msf(med(func(r result) float64 { return float64(r.p(99.9)) })),
			msf(med(func(r result) float64 { return float64(r.max()) })), med(func(r result) float64 { return r.cpuPerRequest().Seconds() * 1e6 }))
	}
	ratio := float64(best[webhook.MutatePath].p(99)) / float64(best[noopPath].p(99))
	medRatio := benchutil.MedianOf(pairs(results), func(p [2]result) float64 { return float64(p[1].p(99)) / float64(p[0].p(99)) })
	verdict := "met"
	if ratio > target {
		verdict = "NOT met"
	}
	fmt.Printf("\np99(mutate)/p99(no-op): %.2fx best of %d (median of the runs' ratios %.2fx); target at most %.1fx: %s\n", ratio, *runs, medRatio, target, verdict)
	if statsErr == nil {
		fmt.Printf("mutating handler's cache during the measured runs: %d hits, %d misses\n", h1-h0, m1-m0)
	}
	fmt.Printf("latency: from each request's intended send time to the end of its response; send lag: actual send - intended\n")
	fmt.Printf("figures from this %d-CPU machine, shared with other work; load average at end: %s; took %s\n",
		runtime.NumCPU(), benchutil.LoadAvg(), time.Since(began).Round(time.Second))
}

// pairs are each run's (no-op, mutate) results.
func pairs(results map[string][]result) [][2]result {
	var out [][2]result
	for i := range results[noopPath] {
		out = append(out, [2]result{results[noopPath][i], results[webhook.MutatePath][i]})
	}
	return out
}

func fail(err error) { benchutil.Fail("bench/webhook", err) }

func ms(d time.Duration) string { return benchutil.Millis(float64(d)) }
func msf(ns float64) string     { return benchutil.Millis(ns) }

// result is one measurement of one path.
type result struct {
	lat      []time.Duration // sorted
	n        int
	failed   int
	firstErr string
	lagP99   time.Duration
	cpu      time.Duration // the server's, during the measurement
	proto    string
}

func (r result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q / 100 * float64(len(r.lat)))
	if i >= len(r.lat) {
		i = len(r.lat) - 1
	}
	return r.lat[i]
}

func (r result) max() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[len(r.lat)-1]
}

// cpuPerRequest is the server's CPU time per request, negative when it
// could not be read.
func (r result) cpuPerRequest() time.Duration {
	if r.n == 0 || r.cpu < 0 {
		return -1
	}
	return r.cpu / time.Duration(r.n)
}

// attack sends rate*d requests to path open loop and waits for them all.
// With cpuURL, the server's CPU time is read before and after.
func attack(client *http.Client, base, path string, bodies *bodies, rate int, d time.Duration, cpuURL string) (result, error) {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	lag := make([]time.Duration, n)
	errs := make([]string, n)
	protos := make([]string, n)
	var cpu0 time.Duration
	if cpuURL != "" {
		c, err := readCPU(client, cpuURL)
		if err != nil {
			return result{}, err
		}
		cpu0 = c
	}
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		body := bodies.next(i, due)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sent := time.Now()
			lag[i] = sent.Sub(due)
			proto, err := post(client, base+path, body)
			lat[i] = time.Since(due)
			protos[i] = proto
			if err != nil {
				errs[i] = err.Error()
			}
		}(i)
	}
	wg.Wait()
	r := result{n: n}
	for _, p := range protos {
		if p != "" {
			r.proto = p
			break
		}
	}
	if cpuURL != "" {
		// An overloaded server may still be working off the requests the
		// client gave up on: wait longer for its figure, or go without.
		slow := &http.Client{Transport: client.Transport, Timeout: 60 * time.Second}
		if c, err := readCPU(slow, cpuURL); err == nil {
			r.cpu = c - cpu0
		} else {
			r.cpu = -1
		}
	}
	for i := range n {
		if errs[i] != "" {
			if r.failed == 0 {
				r.firstErr = errs[i]
			}
			r.failed++
		}
		// A failed request counts with the time it took to fail (a
		// timeout: 5 s), so that failures cannot flatter the figures.
		r.lat = append(r.lat, lat[i])
	}
	sort.Slice(r.lat, func(a, b int) bool { return r.lat[a] < r.lat[b] })
	sort.Slice(lag, func(a, b int) bool { return lag[a] < lag[b] })
	if n > 0 {
		r.lagP99 = lag[min(n-1, int(0.99*float64(n)))]
	}
	return r, nil
}

// post sends one AdmissionReview and checks the answer: 200, an
// AdmissionReview response that allows.
func post(client *http.Client, url string, body []byte) (string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.Proto, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Proto, fmt.Errorf("status %s", resp.Status)
	}
	if !bytes.Contains(b, []byte(`"allowed":true`)) {
		return resp.Proto, fmt.Errorf("not allowed: %.300s", b)
	}
	return resp.Proto, nil
}

func readCPU(client *http.Client, url string) (time.Duration, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns), err
}

func cacheStats(client *http.Client, base string) (hits, misses uint64, err error) {
	resp, err := client.Get(base + statsPath)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, errors.New(resp.Status)
	}
	_, err = fmt.Fscan(resp.Body, &hits, &misses)
	return hits, misses, err
}

// makeCert writes a self-signed certificate for 127.0.0.1 and its key as
// tls.crt and tls.key into dir, and returns a pool trusting it.
func makeCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rollguard-bench-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool, nil
}

// startServer starts `self serve DIR` and waits for its address. The
// server ends when its stdin closes, which the kernel does when this
// process ends in any way.
func startServer(dir string, cache bool) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "serve", dir, "-cache="+strconv.FormatBool(cache))
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(stdout).ReadString('\n')
		got <- line{s, err}
	}()
	select {
	case l := <-got:
		if l.err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, "", fmt.Errorf("webhook server: %w", l.err)
		}
		return cmd, strings.TrimSpace(l.s), nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, "", errors.New("webhook server: not serving after 30s")
	}
}

// serve is the server process: the webhook server on a free loopback
// port, printing host:port once it answers.
func serve(dir string, args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	cache := fs.Bool("cache", true, "the mutating handler's result cache")
	_ = fs.Parse(args)
	logf.SetLogger(logr.Discard())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	cur := &webhook.Current{}
	cur.Store(webhook.FromConfig(nil, 0)) // as Serve does: the defaults, stored once
	m := &webhook.Mutator{Registry: rules.Default(), Lister: lister{selectingService()}, Settings: cur, Namespace: "rollguard-system"}
	setCache(m, *cache)
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	srv.Register(webhook.MutatePath, &ctrlwebhook.Admission{Handler: m})
	srv.Register(noopPath, &ctrlwebhook.Admission{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})})
	srv.Register(cpuPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Fprintln(w, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Nanoseconds())
	}))
	srv.Register(statsPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !writeCacheStats(w, m) {
			http.Error(w, "no cache stats", http.StatusNotFound)
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Start(ctx) }()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	started := srv.StartedChecker()
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case err := <-errc:
			fail(fmt.Errorf("webhook server: %w", err))
		default:
		}
		if started(nil) == nil {
			break
		}
		if time.Now().After(deadline) {
			fail(errors.New("webhook server: not started after 20s"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("127.0.0.1:%d\n", port)
	if err := <-errc; err != nil {
		fail(fmt.Errorf("webhook server: %w", err))
	}
}

// lister is the static Lister: one Service in every namespace.
type lister struct{ svc *corev1.Service }

func (l lister) Services(ns string) ([]*corev1.Service, error) {
	if ns != l.svc.Namespace {
		return nil, nil
	}
	return []*corev1.Service{l.svc}, nil
}
func (lister) Others(string) ([]*manifest.Object, error) { return nil, nil }

// selectingService is the Service of the pods, as the informer holds it.
func selectingService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: namespace, UID: "6f1c2a0e-5a55-4a0e-9d7e-1f0c3b9a7e11", ResourceVersion: "48213",
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Type: corev1.ServiceTypeClusterIP,
			ClusterIP: "10.96.112.7", ClusterIPs: []string{"10.96.112.7"}, SessionAffinity: corev1.ServiceAffinityNone,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}}},
	}
}

func ptr[T any](v T) *T { return &v }
