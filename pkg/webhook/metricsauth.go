package webhook

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// metricsAuth guards the metrics server when it serves HTTPS: the caller's
// bearer token must pass a TokenReview, and its user must be allowed the
// request's verb on the request's path as a non-resource URL (get on
// /metrics) by a SubjectAccessReview. That is how kube-controller-manager
// and the kube-scheduler guard theirs, so a Prometheus that scrapes those
// needs nothing new but a ClusterRole binding.
//
// Answers are cached for ttl, keyed by a hash of the token, the verb and
// the path, so a scrape every 15 s costs the API server two reviews a
// minute; the cache holds at most maxAnswers entries and is emptied when
// full (a flood of bad tokens cannot grow it).
type metricsAuth struct {
	client kubernetes.Interface
	log    logr.Logger
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	answers map[[sha256.Size]byte]authAnswer
}

// authAnswer is a cached verdict: the HTTP status to answer with (0 for
// allowed) and until when it holds.
type authAnswer struct {
	status  int
	message string
	until   time.Time
}

const maxAnswers = 1024

func newMetricsAuth(c kubernetes.Interface, log logr.Logger) *metricsAuth {
	return &metricsAuth{client: c, log: log, ttl: time.Minute, now: time.Now, answers: map[[sha256.Size]byte]authAnswer{}}
}

// filter wraps the metrics handler (the metrics server's Filter).
func (a *metricsAuth) filter(_ logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ans := a.verdict(r); ans.status != 0 {
			http.Error(w, ans.message, ans.status)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// verdict decides a request, from the cache when it can.
func (a *metricsAuth) verdict(r *http.Request) authAnswer {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return authAnswer{status: http.StatusUnauthorized, message: "Unauthorized: a bearer token is required"}
	}
	verb := strings.ToLower(r.Method)
	key := sha256.Sum256([]byte(verb + "\x00" + r.URL.Path + "\x00" + token))
	now := a.now()
	a.mu.Lock()
	ans, hit := a.answers[key]
	a.mu.Unlock()
	if hit && now.Before(ans.until) {
		return ans
	}
	ans, cache := a.review(r, token, verb)
	if cache {
		ans.until = now.Add(a.ttl)
		a.mu.Lock()
		if len(a.answers) >= maxAnswers {
			clear(a.answers)
		}
		a.answers[key] = ans
		a.mu.Unlock()
	}
	return ans
}

// review asks the API server who the token is and what it may do. A
// failed call is not cached: the next scrape asks again.
func (a *metricsAuth) review(r *http.Request, token, verb string) (ans authAnswer, cache bool) {
	ctx := r.Context()
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		a.log.Error(err, "metrics: the token review failed")
		return authAnswer{status: http.StatusInternalServerError, message: "the token could not be reviewed"}, false
	}
	if !tr.Status.Authenticated {
		return authAnswer{status: http.StatusUnauthorized, message: "Unauthorized"}, true
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: r.URL.Path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		a.log.Error(err, "metrics: the access review failed", "user", u.Username)
		return authAnswer{status: http.StatusInternalServerError, message: "the access could not be reviewed"}, false
	}
	if !sar.Status.Allowed {
		return authAnswer{status: http.StatusForbidden, message: "Forbidden: user " + u.Username + " may not " + verb + " " + r.URL.Path}, true
	}
	return authAnswer{}, true
}
