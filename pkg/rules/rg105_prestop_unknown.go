package rules

import (
	"fmt"

	"github.com/rollguard/rollguard/pkg/model"
)

func prestopUnknown() *Rule {
	return &Rule{
		ID: "RG105", Name: "prestop-unknown-duration", Case: Case1, Severity: Warning,
		Summary: "A served container's preStop hook has an effect rollguard cannot read",
		Rollout: "If the hook stops the app, or ends, before every node's kube-proxy has removed the pod, connections from the slower nodes are refused or time out.",
		Why: `rollguard reads what a preStop hook does to the app: it follows an exec hook's commands
(directly, or through sh -c and its flag forms, with a shell's $VAR resolved from the
container's env; the kubelet does not expand $(VAR) in hooks) up to the first one that stops or signals the app, and adds up the sleeps
before it. It knows sleep, kill, killall and pkill (SIGTERM signals the app; KILL,
INT and QUIT stop it; HUP and USR1/USR2 change nothing), nginx -s
quit/stop, apachectl -k graceful-stop/stop, ingress-nginx's /wait-shutdown, and Envoy's admin
endpoints. A command it does not know (a custom binary, an HTTP call to the app, a loop
whose length depends on the app) may stop the app at once or keep it serving for minutes.
Silence would hide the first case, so such a hook is its own finding rather than counting
as a delay.`,
		Fix: `Make the hook keep the app serving for at least the propagation budget before it does
anything that stops it: sleep first, or use the native sleep action and move the other
work into the app's SIGTERM handling. When the app itself keeps serving after SIGTERM,
declare that with the rollguard.io/shutdown-delay annotation. If you know the hook delays
long enough, suppress the finding with rollguard.io/ignore: RG105 and a reason.`,
		Example: `lifecycle:
  preStop:
    exec:
      command: ["/bin/sh", "-c", "sleep 5; /usr/local/bin/drain"]`,
		NoFix: "What the hook's own command does is the app's knowledge; rollguard does not rewrite it.",
		Workload: func(s Settings, w *model.Workload) []Finding {
			var out []Finding
			for _, c := range servedContainers(w) {
				sd := w.Shutdown(c)
				if sd.Known() || sd.Hook.AtLeast >= s.PropagationBudget {
					continue // known, or sleeps long enough before the unknown part
				}
				first := ""
				if sd.Hook.AtLeast > 0 {
					first = fmt.Sprintf(" after sleeping %s", secs(sd.Hook.AtLeast))
				}
				out = append(out, onContainer(c, "lifecycle.preStop",
					fmt.Sprintf("container %q has a preStop hook that%s %s: how long it keeps serving after its pod is deleted is unknown", c.Spec.Name, first, sd.Hook.Unknown),
					fmt.Sprintf("make the hook keep the app serving for at least %ds before it stops it (sleep first), or suppress RG105 with a reason", s.BudgetSeconds())))
			}
			return out
		},
	}
}
