// Package live implements reading, from a running cluster, the objects the
// rules join: workloads, Services, PodDisruptionBudgets and
// HorizontalPodAutoscalers, listed page by page through client-go, so that
// `rollguard audit --cluster` judges what is running with the same model
// and rules as files.
package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rollguard/rollguard/pkg/manifest"
)

// Options select what to read.
type Options struct {
	// Kubeconfig and Context pick the cluster as kubectl does (KUBECONFIG,
	// ~/.kube/config, the current context) when empty.
	Kubeconfig, Context string
	// Namespace to read; empty means the context's namespace, or "default".
	Namespace     string
	AllNamespaces bool
	// Selector filters workloads by label; Services, budgets and
	// autoscalers are always read whole, since they join the workloads.
	Selector string
	// Timeout bounds the whole read, connecting included.
	Timeout time.Duration
	// PageSize is the list page size.
	PageSize int64
}

// Source is a cluster to read from, resolved from a kubeconfig.
type Source struct {
	Config    *rest.Config
	Context   string
	Namespace string // resolved: the flag, the context's, or "default"
}

// Resolve loads the kubeconfig as kubectl does.
func Resolve(opts Options) (*Source, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if opts.Kubeconfig != "" {
		rules.ExplicitPath = opts.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.Context}
	if opts.Namespace != "" {
		overrides.Context.Namespace = opts.Namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w (set --kubeconfig or KUBECONFIG, and --context)", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	raw, _ := cc.RawConfig()
	ctxName := opts.Context
	if ctxName == "" {
		ctxName = raw.CurrentContext
	}
	if opts.Timeout > 0 {
		cfg.Timeout = opts.Timeout
	}
	cfg.UserAgent = "rollguard"
	return &Source{Config: cfg, Context: ctxName, Namespace: ns}, nil
}

// lister lists one kind, one page at a time.
type lister struct {
	apiVersion, kind, resource string
	workload                   bool
	list                       func(ctx context.Context, ns string, o metav1.ListOptions) (items []any, cont string, err error)
}

// Load reads the objects from the cluster. Any error stops the read: a
// partial view of a cluster would report findings that are not there.
func Load(ctx context.Context, src *Source, opts Options) (*manifest.Result, error) {
	if opts.PageSize == 0 {
		opts.PageSize = 500
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	cs, err := kubernetes.NewForConfig(src.Config)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(src.Config)
	if err != nil {
		return nil, err
	}
	ns := src.Namespace
	if opts.AllNamespaces {
		ns = metav1.NamespaceAll
	}
	res := &manifest.Result{}
	for _, l := range listers(cs, dyn) {
		lo := metav1.ListOptions{Limit: opts.PageSize}
		if l.workload {
			lo.LabelSelector = opts.Selector
		}
		for {
			items, cont, err := l.list(ctx, ns, lo)
			if err != nil {
				if l.kind == "Rollout" && (apierrors.IsNotFound(err) || isNoMatch(err)) {
					break // Argo Rollouts is not installed
				}
				return nil, explain(err, src, l, ns)
			}
			for _, it := range items {
				meta := it.(metav1.Object)
				res.Objects = append(res.Objects, &manifest.Object{APIVersion: l.apiVersion, Kind: l.kind,
					Namespace: meta.GetNamespace(), Name: meta.GetName(), Value: it})
			}
			if cont == "" {
				break
			}
			lo.Continue = cont
		}
	}
	return res, nil
}

func isNoMatch(err error) bool {
	var se *apierrors.StatusError
	return errors.As(err, &se) && se.ErrStatus.Code == 404
}

// explain turns a list error into one that says what to do.
func explain(err error, src *Source, l lister, ns string) error {
	where := "in namespace " + ns
	if ns == "" {
		where = "in any namespace"
	}
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("listing %s %s is forbidden: %v; grant the read-only ClusterRole in deploy/rbac/rollguard-audit.yaml (it needs get and list on %s), or audit one namespace you can read with -n",
			l.resource, where, apierrors.ReasonForError(err), l.resource)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the cluster at %s (context %q) did not accept the credentials: %v", src.Config.Host, src.Context, err)
	}
	var ue *url.Error
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) || errors.As(err, &ue) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("cannot reach the cluster at %s (context %q): %v; check that it is up and that --context and --kubeconfig point at it",
			src.Config.Host, src.Context, err)
	}
	return fmt.Errorf("listing %s %s: %w", l.resource, where, err)
}

func items[T any](list []T) []any {
	out := make([]any, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out
}

func listers(cs *kubernetes.Clientset, dyn dynamic.Interface) []lister {
	rollouts := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	return []lister{
		{"apps/v1", "Deployment", "deployments.apps", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.AppsV1().Deployments(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"apps/v1", "StatefulSet", "statefulsets.apps", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.AppsV1().StatefulSets(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"apps/v1", "DaemonSet", "daemonsets.apps", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.AppsV1().DaemonSets(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"apps/v1", "ReplicaSet", "replicasets.apps", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"v1", "Pod", "pods", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.CoreV1().Pods(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"batch/v1", "Job", "jobs.batch", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.BatchV1().Jobs(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"batch/v1", "CronJob", "cronjobs.batch", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.BatchV1().CronJobs(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"v1", "Service", "services", false, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.CoreV1().Services(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"policy/v1", "PodDisruptionBudget", "poddisruptionbudgets.policy", false, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.PolicyV1().PodDisruptionBudgets(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers.autoscaling", false, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return items(l.Items), l.Continue, nil
		}},
		{"argoproj.io/v1alpha1", "Rollout", "rollouts.argoproj.io", true, func(ctx context.Context, ns string, o metav1.ListOptions) ([]any, string, error) {
			l, err := dyn.Resource(rollouts).Namespace(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			out := make([]any, 0, len(l.Items))
			for i := range l.Items {
				r := new(manifest.Rollout)
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(l.Items[i].Object, r); err != nil {
					return nil, "", fmt.Errorf("reading Rollout %s/%s: %w", l.Items[i].GetNamespace(), l.Items[i].GetName(), err)
				}
				out = append(out, r)
			}
			return out, l.GetContinue(), nil
		}},
	}
}
