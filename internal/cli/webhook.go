package cli

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/rollguard/rollguard/pkg/live"
	"github.com/rollguard/rollguard/pkg/rules"
	"github.com/rollguard/rollguard/pkg/webhook"
)

type webhookFlags struct {
	kubeconfig, namespace, configMap string
	host, certDir                    string
	port                             int
	metricsAddr, probeAddr           string
	metricsSecure                    bool
	certSecret, service              string
	mutating, validating             string
	certCheck                        time.Duration
}

func newWebhookCommand(s Streams) *cobra.Command {
	f := &webhookFlags{}
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Serve the admission webhook: the Case 1 and Case 2 fixes on pods, the audit's findings as warnings",
		Long: `Webhook serves rollguard's admission webhook; it runs in the cluster (see docs/webhook.md for the
webhook configurations that call it).

  ` + webhook.MutatePath + `       mutating, Pods at CREATE: a pod that a Service in its namespace selects
                      gets the remediations of the Case 1 and Case 2 rules (a native preStop
                      sleep of the propagation budget, a grace period that covers it and the
                      drain allowance, a readinessProbe on the port the Service targets), and
                      the annotation ` + webhook.MutatedAnnotation + ` listing them
  ` + webhook.ValidatePath + ` validating, Deployments, StatefulSets, DaemonSets, Argo Rollouts: the
                      audit's findings as admission warnings, or denials for the rules listed
                      under deny: in the configuration

Only namespaces labelled ` + webhook.InjectLabel + `=enabled are served (the webhook configurations'
selectors), never kube-system, kube-public, kube-node-lease or --namespace; a pod or pod template
annotated ` + webhook.InjectAnnotation + `=disabled is left alone. The configuration is the
` + webhook.ConfigKey + ` key of the ConfigMap --config-map in --namespace, the same keys as a
rollguard.yaml file; a change is in force at once. The serving certificate is tls.crt and tls.key
in --cert-dir, reloaded when it changes: put there by cert-manager, or, with --cert-secret, made
and rotated by the webhook itself (a CA and a certificate for --service kept in that Secret, which
must be mounted at --cert-dir, and the CA injected into the two webhook configurations). /metrics
is served over HTTPS to callers whose bearer token the API server authorizes for get on the
non-resource URL /metrics (--metrics-secure=false: plain HTTP to anyone). Logs are JSON lines on
stderr.`,
		Example: `  # In the webhook's Deployment
  rollguard webhook --namespace rollguard-system --config-map rollguard --cert-dir /certs

  # The configuration, from measure's output
  rollguard measure --write-config rollguard.yaml
  kubectl create configmap rollguard -n rollguard-system --from-file rollguard.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context(), s) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then KUBECONFIG and ~/.kube/config)")
	fs.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the webhook's own namespace (default: $POD_NAMESPACE)")
	fs.StringVar(&f.configMap, "config-map", "rollguard", "ConfigMap in --namespace holding "+webhook.ConfigKey+" (empty: the defaults)")
	fs.StringVar(&f.host, "host", "", "address to serve the webhook on (default: all)")
	fs.IntVar(&f.port, "port", 9443, "port to serve the webhook on")
	fs.StringVar(&f.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "folder with tls.crt and tls.key")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (empty: none)")
	fs.BoolVar(&f.metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to callers the API server authorizes for get on /metrics (false: plain HTTP to anyone)")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz (empty: none)")
	fs.StringVar(&f.certSecret, "cert-secret", "", "make and rotate the serving certificate in this Secret of --namespace (empty: the certificate comes from elsewhere)")
	fs.StringVar(&f.service, "service", "rollguard-webhook", "the webhook's Service, named in the certificate as SERVICE.NAMESPACE.svc (with --cert-secret)")
	fs.StringVar(&f.mutating, "mutating-webhook-configuration", "rollguard", "MutatingWebhookConfiguration to inject the CA into (with --cert-secret)")
	fs.StringVar(&f.validating, "validating-webhook-configuration", "rollguard", "ValidatingWebhookConfiguration to inject the CA into (with --cert-secret)")
	fs.DurationVar(&f.certCheck, "cert-check-interval", 12*time.Hour, "how often the certificate's validity is checked; it is renewed 90 days before it expires (with --cert-secret)")
	return cmd
}

func (f *webhookFlags) run(ctx context.Context, s Streams) error {
	if f.namespace == "" {
		return usageError("--namespace is empty and POD_NAMESPACE is not set: the webhook must know its own namespace (it never acts there)")
	}
	if f.port < 1 || f.port > 65535 {
		return usageError("--port %d: want 1 to 65535", f.port)
	}
	src, err := live.Resolve(live.Options{Kubeconfig: f.kubeconfig})
	if err != nil {
		return usageError("%v", err)
	}
	if f.certCheck <= 0 {
		return usageError("--cert-check-interval %s: want more than 0", f.certCheck)
	}
	log := zap.New(zap.WriteTo(s.ErrOut), zap.UseDevMode(false))
	ctrllog.SetLogger(log)
	o := webhook.ServerOptions{Config: src.Config, Namespace: f.namespace, ConfigMap: f.configMap,
		Host: f.host, Port: f.port, CertDir: f.certDir, MetricsAddr: f.metricsAddr, ProbeAddr: f.probeAddr, MetricsSecure: f.metricsSecure,
		Registry: rules.Default(), Log: log.WithName("webhook")}
	if f.certSecret != "" {
		o.Rotate = &webhook.Rotation{Secret: f.certSecret, DNSName: f.service + "." + f.namespace + ".svc",
			Mutating: f.mutating, Validating: f.validating, CheckEvery: f.certCheck}
	}
	return webhook.Serve(ctx, o)
}
