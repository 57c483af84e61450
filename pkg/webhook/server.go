package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	autoscalingv2listers "k8s.io/client-go/listers/autoscaling/v2"
	corev1listers "k8s.io/client-go/listers/core/v1"
	policyv1listers "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
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
	// MetricsSecure serves /metrics over HTTPS (a self-signed certificate)
	// to callers whose bearer token the API server authenticates and
	// authorizes for get on /metrics (see metricsAuth); plain HTTP to
	// anyone otherwise.
	MetricsSecure bool
	// Rotate, when set, has the webhook make and rotate its own serving
	// certificate (open-policy-agent/cert-controller): a CA and a
	// certificate for DNSName kept in the Secret Rotate.Secret (mounted at
	// CertDir), and the CA injected into the two webhook configurations.
	// Without it the certificate comes from elsewhere (cert-manager).
	Rotate   *Rotation
	Registry *rules.Registry
	Log      logr.Logger
	// Ready, when set, is closed once the server serves with synced caches.
	Ready chan<- struct{}
}

// Rotation configures the self-managed serving certificate.
type Rotation struct {
	Secret string // in Namespace
	// DNSName is the Service's name in the cluster, SERVICE.NAMESPACE.svc.
	DNSName string
	// Mutating and Validating name the webhook configurations to inject
	// the CA into.
	Mutating, Validating string
	// CheckEvery is how often the certificate's validity is checked; it is
	// renewed 90 days before it expires (it lasts a year; the CA ten).
	CheckEvery time.Duration
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

// stripManagedFields drops an object's managedFields before the informer
// stores it: no rule reads them, and on a cluster of many Services they
// are most of what the cache would hold.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
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
	case resp.Result != nil && strings.HasPrefix(resp.Result.Message, ErrorPrefix):
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
	// Once per rule the response names; once with no rule when it names
	// none (an allowed response's Result is there, with no message).
	ruleIDs := map[string]bool{}
	msgs := resp.Warnings
	if resp.Result != nil {
		msgs = append(slices.Clip(msgs), resp.Result.Message)
	}
	for _, m := range msgs {
		if id := ruleOf(m); id != "" {
			ruleIDs[id] = true
		}
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
	serverMinor, _ := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	// A kubelet may be up to three minor versions older than the API
	// server (the version skew policy), and the native sleep is a
	// kubelet's feature: judge by the oldest kubelet allowed.
	minor := max(serverMinor-3, 0)
	cur := &Current{}
	cur.Store(FromConfig(nil, minor))

	f := informers.NewSharedInformerFactoryWithOptions(cs, 10*time.Minute, informers.WithTransform(stripManagedFields))
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
			if serverMinor > 0 && c.KubeMinor > serverMinor {
				// No kubelet is newer than its API server: k8sVersion names
				// the oldest kubelet, not the control plane.
				o.Log.Info("k8sVersion is newer than the API server, which no kubelet can be: using the API server's", "k8sVersion", c.KubeMinor, "apiServerMinor", serverMinor)
				c.KubeMinor = serverMinor
			}
			st := FromConfig(c, minor)
			cur.Store(st)
			reloads.WithLabelValues("ok").Inc()
			o.Log.Info("configuration loaded", "configmap", o.Namespace+"/"+o.ConfigMap, "propagationBudget", c.PropagationBudget.String(),
				"oldestKubeletMinor", st.KubeMinor)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: load,
			UpdateFunc: func(old, obj any) {
				// A resync repeats the object: only a new version is a change
				// (a new Settings would empty the caches).
				if o, ok := old.(*corev1.ConfigMap); ok && obj.(*corev1.ConfigMap).ResourceVersion == o.ResourceVersion {
					return
				}
				load(obj)
			},
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

	// The manager runs the metrics and probe servers, and the certificate
	// rotator when there is one; the webhook server starts once the
	// certificate is on disk.
	metricsAddr, probeAddr := o.MetricsAddr, o.ProbeAddr
	if metricsAddr == "" {
		metricsAddr = "0" // none
	}
	mopts := metricsserver.Options{BindAddress: metricsAddr}
	if o.MetricsSecure {
		// The webhook's own certificate, which a scraper can verify, and
		// the API server's word on each caller.
		mopts.SecureServing = true
		mopts.TLSOpts = []func(*tls.Config){(&servingCert{ctx: ctx, dir: o.CertDir, log: o.Log}).tlsOpt}
		mopts.FilterProvider = func(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
			cs, err := kubernetes.NewForConfigAndClient(c, hc)
			if err != nil {
				return nil, err
			}
			return newMetricsAuth(cs, o.Log).filter, nil
		}
	}
	mgr, err := manager.New(o.Config, manager.Options{Scheme: clientgoscheme.Scheme, Logger: o.Log,
		Metrics: mopts, HealthProbeBindAddress: probeAddr})
	if err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	certsReady := make(chan struct{})
	if o.Rotate != nil {
		err := rotator.AddRotator(mgr, &rotator.CertRotator{
			SecretKey: types.NamespacedName{Namespace: o.Namespace, Name: o.Rotate.Secret},
			CertDir:   o.CertDir, CAName: "rollguard-webhook-ca", CAOrganization: "rollguard",
			DNSName: o.Rotate.DNSName, IsReady: certsReady, RotationCheckFrequency: o.Rotate.CheckEvery,
			Webhooks: []rotator.WebhookInfo{{Name: o.Rotate.Mutating, Type: rotator.Mutating}, {Name: o.Rotate.Validating, Type: rotator.Validating}},
		})
		if err != nil {
			return fmt.Errorf("starting the certificate rotator: %w", err)
		}
	} else {
		close(certsReady)
	}
	var cachesSynced atomic.Bool
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !cachesSynced.Load() {
			return errors.New("the caches of Services, PDBs and HPAs have not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	started := srv.StartedChecker()
	if err := mgr.AddReadyzCheck("webhook", started); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- mgr.Start(ctx) }()
	go func() {
		select {
		case <-certsReady:
			errc <- srv.Start(ctx)
		case <-ctx.Done():
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.Join(ctx.Err(), errors.New("the informer caches did not sync"))
	}
	cachesSynced.Store(true)
	o.Log.Info("caches synced", "apiServerMinor", serverMinor, "oldestKubeletMinor", minor)
	if o.Ready != nil {
		go func() {
			for ctx.Err() == nil {
				if started(&http.Request{}) == nil {
					o.Log.Info("serving", "host", o.Host, "port", o.Port)
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
		if ctx.Err() != nil || err == nil {
			return nil
		}
		return err
	}
}
