// Command audit benchmarks `rollguard audit` against kube-score on the same
// generated corpus in the same run, and prints objects per second, the
// ratio between the two, peak memory, and how time grows with corpus size.
//
// Run it through bench/audit/run.sh, which builds rollguard and installs the
// pinned kube-score first.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	rollguard := flag.String("rollguard", "bin/rollguard", "rollguard binary")
	kubeScore := flag.String("kube-score", ".cache/bin/kube-score", "kube-score binary")
	sizesFlag := flag.String("sizes", "2000,5000,10000,20000", "corpus sizes in objects")
	runs := flag.Int("runs", 3, "runs per tool and size; the median time and the largest peak memory are reported")
	strict := flag.Bool("strict", false, "exit 1 when a goal is missed")
	keep := flag.String("keep", "", "write the corpora into this folder and keep them (for profiling), instead of a temporary one")
	only := flag.String("layout", "", "run only the layout whose name holds this text (\"40 namespaces\", \"one namespace\")")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 5 {
			fail(fmt.Errorf("-sizes: %q is not a size of at least 5", s))
		}
		sizes = append(sizes, n)
	}
	tmp := *keep
	if tmp == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "rollguard-bench-"); err != nil {
			fail(err)
		}
		defer os.RemoveAll(tmp)
	}

	layouts := []struct {
		name string
		one  bool
	}{{"40 namespaces", false}, {"one namespace", true}}
	fmt.Printf("rollguard audit vs kube-score v1.20.0: generated corpora, %d runs each, median time, peak RSS\n", *runs)
	missed := false
	for _, layout := range layouts {
		if *only != "" && !strings.Contains(layout.name, *only) {
			continue
		}
		if !runLayout(layout.name, layout.one, sizes, *runs, tmp, *rollguard, *kubeScore) {
			missed = true
		}
	}
	if missed && *strict {
		os.Exit(1)
	}
}

// runLayout measures both tools on corpora of every size in one layout and
// prints the table and the goals; it reports whether every goal was met.
func runLayout(name string, oneNamespace bool, sizes []int, runs int, tmp, rollguard, kubeScore string) bool {
	type row struct {
		objects int
		rg, ks  result
	}
	var rows []row
	fmt.Printf("\n%s\n%8s  %14s %9s  %16s %9s  %7s\n", name, "objects", "rollguard obj/s", "peak MiB", "kube-score obj/s", "peak MiB", "ratio")
	for _, n := range sizes {
		dir := filepath.Join(tmp, fmt.Sprintf("%s-%d", strings.ReplaceAll(name, " ", "-"), n))
		files, err := generate(dir, n, oneNamespace)
		if err != nil {
			fail(err)
		}
		rg := measure(runs, rollguard, append([]string{"audit", "-o", "json"}, files...))
		ks := measure(runs, kubeScore, append([]string{"score", "-o", "json"}, files...))
		rows = append(rows, row{objects: n, rg: rg, ks: ks})
		fmt.Printf("%8d  %14.0f %9.1f  %16.0f %9.1f  %6.1fx\n", n, rg.rate(n), rg.peakMiB, ks.rate(n), ks.peakMiB, ks.median.Seconds()/rg.median.Seconds())
	}
	first, last := rows[0], rows[len(rows)-1]
	scale := float64(last.objects) / float64(first.objects)
	growth := last.rg.median.Seconds() / first.rg.median.Seconds()
	memGrowth := last.rg.peakMiB / first.rg.peakMiB
	ratio := last.ks.median.Seconds() / last.rg.median.Seconds()
	fmt.Printf("growth %d -> %d objects (x%.0f): rollguard time x%.1f, peak memory x%.1f; kube-score time x%.1f\n",
		first.objects, last.objects, scale, growth, memGrowth, last.ks.median.Seconds()/first.ks.median.Seconds())
	ok := true
	goal := func(met bool, text string) {
		mark := "met   "
		if !met {
			mark, ok = "MISSED", false
		}
		fmt.Printf("  %s %s\n", mark, text)
	}
	fmt.Println("goals:")
	goal(ratio >= 5, fmt.Sprintf("at least 5x kube-score at %d objects: %.1fx", last.objects, ratio))
	goal(last.objects < 20000 || last.rg.median <= time.Second, fmt.Sprintf("20,000 objects in at most 1 s: %d objects in %.2f s", last.objects, last.rg.median.Seconds()))
	goal(last.rg.peakMiB <= 250, fmt.Sprintf("at most 250 MiB at %d objects: %.1f MiB", last.objects, last.rg.peakMiB))
	goal(growth <= scale*1.5, fmt.Sprintf("linear growth: time x%.1f for x%.0f objects (at most x%.0f allowed)", growth, scale, scale*1.5))
	return ok
}

type result struct {
	median  time.Duration
	peakMiB float64
}

func (r result) rate(n int) float64 { return float64(n) / r.median.Seconds() }

// measure runs a command several times with its output discarded, and
// returns the median wall time and the largest peak resident memory.
func measure(runs int, bin string, args []string) result {
	var times []time.Duration
	var peak int64
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fail(err)
	}
	defer devnull.Close()
	for i := 0; i < runs; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Stdout = devnull
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		elapsed := time.Since(start)
		// Both tools exit 1 when they find problems; anything else is a failure.
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
			fail(fmt.Errorf("%s: %v\n%s", bin, err, stderr.String()))
		}
		times = append(times, elapsed)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
			peak = ru.Maxrss // KiB on Linux
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return result{median: times[len(times)/2], peakMiB: float64(peak) / 1024}
}

// generate writes n objects as apps of five objects each (Deployment,
// Service, PodDisruptionBudget or HorizontalPodAutoscaler, ConfigMap and a
// second Service), with a deterministic mix of the mistakes rollguard and
// kube-score look for, 100 apps to a file as Helm would render them.
func generate(dir string, n int, oneNamespace bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	var files []string
	var w *bufio.Writer
	var f *os.File
	written := 0
	for app := 0; written < n; app++ {
		if app%100 == 0 {
			if w != nil {
				if err := w.Flush(); err != nil {
					return nil, err
				}
				f.Close()
			}
			path := filepath.Join(dir, fmt.Sprintf("apps-%04d.yaml", app/100))
			var err error
			if f, err = os.Create(path); err != nil {
				return nil, err
			}
			files = append(files, path)
			w = bufio.NewWriter(f)
		}
		for _, doc := range appObjects(app, rng, oneNamespace) {
			if written == n {
				break
			}
			fmt.Fprintf(w, "---\n# Source: apps/templates/app-%d.yaml\n%s", app, doc)
			written++
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return files, f.Close()
}

func appObjects(i int, rng *rand.Rand, oneNamespace bool) []string {
	name := fmt.Sprintf("app-%d", i)
	ns := fmt.Sprintf("team-%d", i%40)
	if oneNamespace {
		ns = "shop"
	}
	replicas := 1 + rng.IntN(5)
	probe := ""
	if rng.IntN(3) > 0 {
		probe = "          readinessProbe:\n            httpGet: {path: /ready, port: http}\n            periodSeconds: 5\n" +
			"          livenessProbe:\n            httpGet: {path: /healthz, port: http}\n            failureThreshold: 6\n"
	}
	hook := ""
	switch rng.IntN(4) {
	case 0:
		hook = "          lifecycle:\n            preStop:\n              sleep: {seconds: 5}\n"
	case 1:
		hook = "          lifecycle:\n            preStop:\n              exec: {command: [\"sh\", \"-c\", \"sleep 2\"]}\n"
	}
	deploy := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app.kubernetes.io/name: %[1]s, app.kubernetes.io/part-of: shop}
spec:
  replicas: %[3]d
  selector:
    matchLabels: {app: %[1]s}
  strategy:
    rollingUpdate: {maxSurge: 25%%, maxUnavailable: %[4]d}
  template:
    metadata:
      labels: {app: %[1]s, version: v%[5]d}
    spec:
      terminationGracePeriodSeconds: %[6]d
      containers:
        - name: app
          image: registry.example.com/%[1]s:1.%[5]d.0
          imagePullPolicy: Always
          ports:
            - {name: http, containerPort: 8080}
            - {name: metrics, containerPort: 9090}
          env:
            - {name: LOG_LEVEL, value: info}
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {cpu: 500m, memory: 256Mi}
%[7]s%[8]s`, name, ns, replicas, rng.IntN(2), rng.IntN(9), 10+rng.IntN(30), probe, hook)
	svc := fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %[1]s\n  namespace: %[2]s\nspec:\n  selector: {app: %[1]s}\n  ports:\n    - {name: http, port: 80, targetPort: http}\n", name, ns)
	metrics := fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %[1]s-metrics\n  namespace: %[2]s\nspec:\n  selector: {app: %[1]s}\n  ports:\n    - {name: metrics, port: 9090, targetPort: metrics}\n", name, ns)
	guard := fmt.Sprintf("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: %[1]s\n  namespace: %[2]s\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels: {app: %[1]s}\n", name, ns)
	if rng.IntN(2) == 0 {
		guard = fmt.Sprintf("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: %[1]s\n  namespace: %[2]s\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: %[1]s}\n  minReplicas: 2\n  maxReplicas: 10\n", name, ns)
	}
	cm := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %[1]s\n  namespace: %[2]s\ndata:\n  config.yaml: |\n    listen: :8080\n    upstream: http://%[1]s-backend\n", name, ns)
	return []string{deploy, svc, guard, cm, metrics}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "bench/audit: %v\n", err)
	os.Exit(2)
}
