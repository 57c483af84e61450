package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// metricsAuth guards the metrics server when it serves HTTPS: the caller's
// bearer token must pass a TokenReview, and its user must be allowed the
// request's verb on the request's path as a non-resource URL (get on
// /metrics) by a SubjectAccessReview, the way kube-controller-manager and
// kube-scheduler guard theirs. A Prometheus that scrapes those already
// holds the right.
//
// Verdicts are cached by a hash of the token, the verb and the path:
// allowed ones for allowTTL (a scrape every 15 s costs two reviews a
// minute), refused ones for denyTTL (a new binding is in force soon). The
// two caches are apart and each bounded, so a flood of bad tokens can
// empty only the refusals. Concurrent requests with one token share one
// review; at most maxReviews run at once and each has reviewTimeout, and a
// request beyond that is answered 503 at once instead of queueing.
type metricsAuth struct {
	client kubernetes.Interface
	log    logr.Logger
	now    func() time.Time

	flight  singleflight.Group
	slots   chan struct{}
	mu      sync.Mutex
	allowed map[[sha256.Size]byte]time.Time // until when
	denied  map[[sha256.Size]byte]authAnswer
}

// authAnswer is a refusal: the HTTP status and message, and until when it
// holds when cached.
type authAnswer struct {
	status  int
	message string
	until   time.Time
}

const (
	allowTTL      = time.Minute
	denyTTL       = 10 * time.Second
	maxAllowed    = 64 // callers with a right: a few scrapers
	maxDenied     = 1024
	maxReviews    = 4
	reviewTimeout = 10 * time.Second
)

// errBusy is a review not started because maxReviews were running.
var errBusy = errors.New("too many reviews in flight")

func newMetricsAuth(c kubernetes.Interface, log logr.Logger) *metricsAuth {
	return &metricsAuth{client: c, log: log, now: time.Now, slots: make(chan struct{}, maxReviews),
		allowed: map[[sha256.Size]byte]time.Time{}, denied: map[[sha256.Size]byte]authAnswer{}}
}

// filter wraps the metrics handler (the metrics server's Filter).
func (a *metricsAuth) filter(_ logr.Logger, next http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ans := a.verdict(r); ans.status != 0 {
			if ans.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rollguard-webhook metrics"`)
			}
			http.Error(w, ans.message, ans.status)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// bearerToken is the request's bearer token, read as the API server reads
// one: the scheme in any case, one space, a token with no white space.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", false
	}
	return token, true
}

// verdict decides a request: a zero answer allows it.
func (a *metricsAuth) verdict(r *http.Request) authAnswer {
	token, ok := bearerToken(r)
	if !ok {
		return authAnswer{status: http.StatusUnauthorized, message: "Unauthorized: a bearer token is required"}
	}
	verb := strings.ToLower(r.Method)
	key := sha256.Sum256([]byte(verb + "\x00" + r.URL.Path + "\x00" + token))
	now := a.now()
	a.mu.Lock()
	until, allowed := a.allowed[key]
	refusal, denied := a.denied[key]
	a.mu.Unlock()
	switch {
	case allowed && now.Before(until):
		return authAnswer{}
	case denied && now.Before(refusal.until):
		return refusal
	}
	// One review for all the requests that wait on this key; it is not
	// the first request's, so it does not end with that request.
	v, err, _ := a.flight.Do(string(key[:]), func() (any, error) {
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
		default:
			return nil, errBusy
		}
		ctx, cancel := context.WithTimeout(context.Background(), reviewTimeout)
		defer cancel()
		ans, err := a.review(ctx, token, verb, r.URL.Path)
		if err != nil {
			return nil, err
		}
		a.remember(key, ans, a.now())
		return ans, nil
	})
	switch {
	case errors.Is(err, errBusy):
		return authAnswer{status: http.StatusServiceUnavailable, message: "the API server is reviewing other callers: retry"}
	case err != nil:
		a.log.Error(err, "metrics: the review of a caller failed")
		return authAnswer{status: http.StatusInternalServerError, message: "the caller could not be reviewed"}
	}
	return v.(authAnswer)
}

// remember caches a verdict. A full cache is emptied: the refusals' by
// bad tokens, never the allowed callers'.
func (a *metricsAuth) remember(key [sha256.Size]byte, ans authAnswer, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ans.status == 0 {
		if len(a.allowed) >= maxAllowed {
			clear(a.allowed)
		}
		a.allowed[key] = now.Add(allowTTL)
		return
	}
	if len(a.denied) >= maxDenied {
		clear(a.denied)
	}
	ans.until = now.Add(denyTTL)
	a.denied[key] = ans
}

// review asks the API server who the token is and what it may do: a zero
// answer allows. Errors (the API server unreachable, the reviews not
// permitted) are not verdicts, and are not cached.
func (a *metricsAuth) review(ctx context.Context, token, verb, path string) (authAnswer, error) {
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return authAnswer{}, err
	}
	if !tr.Status.Authenticated {
		return authAnswer{status: http.StatusUnauthorized, message: "Unauthorized"}, nil
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return authAnswer{}, err
	}
	if !sar.Status.Allowed {
		return authAnswer{status: http.StatusForbidden, message: "Forbidden: user " + u.Username + " may not " + verb + " " + path}, nil
	}
	return authAnswer{}, nil
}

// servingCert gives the metrics server the webhook's own serving
// certificate (tls.crt and tls.key in dir, for SERVICE.NAMESPACE.svc), so
// that a scraper can verify it with the CA it was issued by. The files
// may come after the server starts (the certificate rotator or
// cert-manager writes the Secret, the kubelet the files): until then a
// handshake fails; from then on a watcher follows them.
type servingCert struct {
	ctx context.Context
	dir string
	log logr.Logger

	mu sync.Mutex
	w  *certwatcher.CertWatcher
}

func (c *servingCert) tlsOpt(cfg *tls.Config) { cfg.GetCertificate = c.get }

func (c *servingCert) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		crt, key := filepath.Join(c.dir, "tls.crt"), filepath.Join(c.dir, "tls.key")
		if _, err := os.Stat(crt); err != nil {
			return nil, errors.New("rollguard: the serving certificate is not issued yet")
		}
		w, err := certwatcher.New(crt, key)
		if err != nil {
			return nil, err
		}
		go func() {
			if err := w.Start(c.ctx); err != nil {
				c.log.Error(err, "metrics: watching the serving certificate failed")
			}
		}()
		c.w = w
	}
	return c.w.GetCertificate(hello)
}
