package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	autoscalingv2listers "k8s.io/client-go/listers/autoscaling/v2"
	corev1listers "k8s.io/client-go/listers/core/v1"
	policyv1listers "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

// Paths the handlers are served on.
const (
	MutatePath   = "/mutate-pods"
	ValidatePath = "/validate-workloads"
	// ConfigKey is the key of the ConfigMap that holds the configuration
	// file, as `kubectl create configmap NAME --from-file rollguard.yaml`
	// names it.
	ConfigKey = "rollguard.yaml"
)

// ServerOptions configure Serve.
type ServerOptions struct {
	Config *rest.Config
	// Namespace is the webhook's own: never mutated or judged, and where
	// ConfigMap lives.
	Namespace string
	// ConfigMap names the ConfigMap holding the configuration; "" for the
	// defaults. It is watched, and a change is in force at once.
	ConfigMap string
	// Host, Port and CertDir (tls.crt, tls.key, reloaded when they change)
	// of the webhook server.
	Host    string
	Port    int
	CertDir string
	// MetricsAddr serves /metrics and ProbeAddr /healthz and /readyz;
	// empty for none.
	MetricsAddr, ProbeAddr string
	Registry               *rules.Registry
	Log                    logr.Logger
	// Ready, when set, is closed once the server serves with synced caches.
	Ready chan<- struct{}
}

// admissions counts admissions by handler, outcome and rule.
var admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rollguard_webhook_admissions_total",
	Help: "Admission requests answered by rollguard's webhook, by handler (mutate, validate), outcome (mutated, unchanged, warned, denied, allowed, error) and rule (empty when none applies).",
}, []string{"handler", "outcome", "rule"})

var reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rollguard_webhook_config_reloads_total",
	Help: "Configuration reloads from the ConfigMap, by result (ok, error).",
}, []string{"result"})

func init() { metrics.Registry.MustRegister(admissions, reloads) }

// informerLister is a Lister over shared informers.
type informerLister struct {
	svc corev1listers.ServiceLister
	pdb policyv1listers.PodDisruptionBudgetLister
	hpa autoscalingv2listers.HorizontalPodAutoscalerLister
}

func (l *informerLister) Services(ns string) ([]*corev1.Service, error) {
	return l.svc.Services(ns).List(labels.Everything())
}

func (l *informerLister) Others(ns string) ([]*manifest.Object, error) {
	var out []*manifest.Object
	pdbs, err := l.pdb.PodDisruptionBudgets(ns).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, p := range pdbs {
		out = append(out, &manifest.Object{APIVersion: "policy/v1", Kind: "PodDisruptionBudget", Namespace: p.Namespace, Name: p.Name, Value: p})
	}
	hpas, err := l.hpa.HorizontalPodAutoscalers(ns).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, h := range hpas {
		out = append(out, &manifest.Object{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Namespace: h.Namespace, Name: h.Name, Value: h})
	}
	return out, nil
}

// counted wraps a handler to count its outcomes.
type counted struct {
	name string
	h    admission.Handler
}

func (c counted) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp := c.h.Handle(ctx, req)
	outcome := "allowed"
	switch {
	case resp.Result != nil && resp.Result.Code >= 400 && resp.Result.Code != http.StatusForbidden:
		outcome = "error"
	case !resp.Allowed:
		outcome = "denied"
	case len(resp.Patches) > 0:
		outcome = "mutated"
	case len(resp.Warnings) > 0:
		outcome = "warned"
	case c.name == "mutate":
		outcome = "unchanged"
	}
	ruleIDs := map[string]bool{}
	for _, w := range resp.Warnings {
		ruleIDs[ruleOf(w)] = true
	}
	if resp.Result != nil {
		ruleIDs[ruleOf(resp.Result.Message)] = true
	}
	if len(ruleIDs) == 0 {
		ruleIDs[""] = true
	}
	for id := range ruleIDs {
		admissions.WithLabelValues(c.name, outcome, id).Inc()
	}
	return resp
}

// ruleOf finds the first rule ID ("RG123") in a message.
func ruleOf(s string) string {
	i := strings.Index(s, "RG")
	if i < 0 || i+5 > len(s) {
		return ""
	}
	if _, err := strconv.Atoi(s[i+2 : i+5]); err != nil {
		return ""
	}
	return s[i : i+5]
}

// Serve runs the webhook until ctx ends: the mutating and validating
// handlers over informer caches of Services, PDBs and HPAs, the
// configuration from the ConfigMap (reloaded on change), metrics and
// health endpoints.
func Serve(ctx context.Context, o ServerOptions) error {
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return err
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("reading the API server's version: %w", err)
	}
	minor, _ := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	cur := &Current{}
	cur.Store(FromConfig(nil, minor))

	f := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	l := &informerLister{svc: f.Core().V1().Services().Lister(), pdb: f.Policy().V1().PodDisruptionBudgets().Lister(),
		hpa: f.Autoscaling().V2().HorizontalPodAutoscalers().Lister()}
	synced := []cache.InformerSynced{f.Core().V1().Services().Informer().HasSynced,
		f.Policy().V1().PodDisruptionBudgets().Informer().HasSynced, f.Autoscaling().V2().HorizontalPodAutoscalers().Informer().HasSynced}
	if o.ConfigMap != "" {
		cf := informers.NewSharedInformerFactoryWithOptions(cs, 10*time.Minute, informers.WithNamespace(o.Namespace),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.ConfigMap).String()
			}))
		inf := cf.Core().V1().ConfigMaps().Informer()
		load := func(obj any) {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok {
				return
			}
			c, err := config.Parse([]byte(cm.Data[ConfigKey]), o.Registry)
			if err != nil {
				reloads.WithLabelValues("error").Inc()
				o.Log.Error(err, "configuration not loaded; the previous one stays in force", "configmap", o.Namespace+"/"+o.ConfigMap, "key", ConfigKey)
				return
			}
			cur.Store(FromConfig(c, minor))
			reloads.WithLabelValues("ok").Inc()
			o.Log.Info("configuration loaded", "configmap", o.Namespace+"/"+o.ConfigMap, "propagationBudget", c.PropagationBudget.String())
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    load,
			UpdateFunc: func(_, obj any) { load(obj) },
			DeleteFunc: func(any) {
				cur.Store(FromConfig(nil, minor))
				reloads.WithLabelValues("ok").Inc()
				o.Log.Info("configuration deleted: the defaults are in force", "configmap", o.Namespace+"/"+o.ConfigMap)
			},
		}); err != nil {
			return err
		}
		cf.Start(ctx.Done())
		synced = append(synced, inf.HasSynced)
	}
	f.Start(ctx.Done())

	srv := webhook.NewServer(webhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir})
	srv.Register(MutatePath, &webhook.Admission{Handler: counted{"mutate", &Mutator{Registry: o.Registry, Lister: l, Settings: cur, Namespace: o.Namespace}}})
	srv.Register(ValidatePath, &webhook.Admission{Handler: counted{"validate", &Validator{Registry: o.Registry, Lister: l, Settings: cur, Namespace: o.Namespace, Mutating: true}}})

	var cachesSynced atomic.Bool
	errc := make(chan error, 3)
	go func() { errc <- srv.Start(ctx) }()
	if o.MetricsAddr != "" {
		go func() {
			errc <- serveHTTP(ctx, o.MetricsAddr, promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
		}()
	}
	started := srv.StartedChecker()
	if o.ProbeAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
			if !cachesSynced.Load() {
				http.Error(w, "caches not synced", http.StatusServiceUnavailable)
				return
			}
			if err := started(r); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		go func() { errc <- serveHTTP(ctx, o.ProbeAddr, mux) }()
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.Join(ctx.Err(), errors.New("the informer caches did not sync"))
	}
	cachesSynced.Store(true)
	o.Log.Info("serving", "host", o.Host, "port", o.Port, "kubernetesMinor", minor)
	if o.Ready != nil {
		go func() {
			for ctx.Err() == nil {
				if started(&http.Request{}) == nil {
					close(o.Ready)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// serveHTTP serves h on addr until ctx ends.
func serveHTTP(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	}()
	if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
