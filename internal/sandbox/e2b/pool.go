package e2b

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// InterpreterPort is the port of E2B's code interpreter in its sandboxes.
const InterpreterPort = 49999

// Metadata keys every sandbox of a pool carries, so a restarted operator finds them.
const (
	MetaPool     = "vizops-pool"     // the SandboxPool's namespace/name
	MetaPoolUID  = "vizops-pool-uid" // the SandboxPool's UID: the key sandboxes are listed by
	MetaInstance = "vizops-instance" // the live pool object (one process, one settings generation)
	MetaRequest  = "vizops-request"  // the request it was created for, when made on demand
)

// Config is one pool's E2B settings, resolved by the caller (the Secret read).
type Config struct {
	APIURL     string
	Domain     string
	TemplateID string
	APIKey     APIKey
	// KeySource names where the key came from, for messages (never the key):
	// `Secret ns/name, key "api-key"`.
	KeySource string
	// SandboxTimeout is how long a warm sandbox lives unless extended.
	SandboxTimeout time.Duration
	// MaxCreatesPerSecond caps sandbox creation.
	MaxCreatesPerSecond float64
	// PoolKey and PoolUID name the SandboxPool in each sandbox's metadata.
	PoolKey, PoolUID string
	// AllowHTTP lets APIURL be plain http; by default the key is sent over https
	// only. The platform team sets it (a self-hosted service on a trusted network).
	AllowHTTP bool
}

// Endpoint is where one sandbox's code interpreter answers.
type Endpoint struct {
	SandboxID string
	// URL is https://49999-<sandboxID>.<domain> (Options.SandboxURL decides).
	URL string
	// AccessToken is the sandbox's envdAccessToken, sent as X-Access-Token on
	// POST /execute only, as the SDKs do. The code interpreter does not check it.
	AccessToken string
	// TrafficToken is the sandbox's trafficAccessToken, sent as
	// e2b-traffic-access-token on every request: it is what E2B's proxy checks for
	// a sandbox created without public traffic, as the pool creates them.
	TrafficToken string
}

// Interpreter runs one request, in a fresh context, in one sandbox's code
// interpreter (codeinterpreter.Client implements it).
type Interpreter interface {
	Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)
}

// InterpreterFunc makes the interpreter client of one sandbox. hc already carries
// E2B's routing and auth headers (E2b-Sandbox-Id, E2b-Sandbox-Port,
// e2b-traffic-access-token, and X-Access-Token on POST /execute).
type InterpreterFunc func(ep Endpoint, hc *http.Client) Interpreter

// Options are the backend's process-wide settings.
type Options struct {
	// Interpreter makes each sandbox's interpreter client (nil: CodeInterpreter).
	Interpreter InterpreterFunc
	// HTTP is used for API calls and, with E2B's headers added, for the
	// interpreters (nil: one with a 1 min response-header timeout; API calls also get
	// RequestTimeout overall, runs none beyond their context). It takes the proxy
	// from HTTPS_PROXY/NO_PROXY and the CAs from SSL_CERT_FILE/SSL_CERT_DIR.
	HTTP *http.Client
	// RequestTimeout bounds each API call when HTTP has no Timeout (0: RequestTimeout,
	// the SDKs' 60 s).
	RequestTimeout time.Duration
	// SandboxURL gives a sandbox's interpreter URL (nil: DefaultSandboxURL).
	SandboxURL func(sandboxID, domain string) string
	// Clock drives backoff, rate limiting and keep-alives (nil: the real clock).
	Clock clock.WithTicker
	// Observe is told each API call's op and status code (metrics).
	Observe func(op, code string)
	Log     logr.Logger
	// ExecMargin is added to a request's timeout for its sandbox's own timeout
	// (0: 30 s). DefaultExecTimeout stands in for a request without one (0: 60 s).
	ExecMargin, DefaultExecTimeout time.Duration
	// Maintain is how often warm sandboxes are checked and extended (0: 10 s); a pool
	// whose sandbox timeout is shorter than three ticks checks every third of it.
	Maintain time.Duration
	// BackoffBase and BackoffMax bound the wait after a failed creation (0: 1 s, 60 s).
	BackoffBase, BackoffMax time.Duration
}

// DefaultSandboxURL is the SDKs' rule for a sandbox port's address:
// https://<port>-<sandboxID>.<domain>.
func DefaultSandboxURL(sandboxID, domain string) string {
	return fmt.Sprintf("https://%d-%s.%s", InterpreterPort, sandboxID, domain)
}

// KeyRejectedError says E2B refused the pool's API key (401). It wraps
// sandbox.ErrUnavailable.
type KeyRejectedError struct {
	Source string
	Code   int
}

func (e *KeyRejectedError) Error() string {
	return fmt.Sprintf("E2B rejected the API key in %s (%d %s): put a valid E2B API key there; the pool tries again when the Secret changes",
		e.Source, e.Code, http.StatusText(e.Code))
}

func (e *KeyRejectedError) Unwrap() error { return sandbox.ErrUnavailable }

// ForbiddenError is a 403 of E2B: Kind says what it refuses (the team, the template,
// or this request's settings). It wraps sandbox.ErrUnavailable.
type ForbiddenError struct {
	Kind     Forbiddance
	Source   string // where the key came from
	Template string
	// Message is E2B's own, sanitised and short.
	Message string
}

func (e *ForbiddenError) Error() string {
	switch e.Kind {
	case ForbiddenTeam:
		return fmt.Sprintf("E2B refused the team of the API key in %s (403: %s): the key is valid but its team is blocked; see the E2B dashboard or E2B support; the pool tries again when the Secret changes",
			e.Source, e.Message)
	case ForbiddenTemplate:
		return fmt.Sprintf("E2B refused template %q to the API key in %s (403: %s): the template belongs to another team or is private; use a template of your team or a public one (code-interpreter-v1) in spec.e2b.templateID",
			e.Template, e.Source, e.Message)
	}
	return fmt.Sprintf("E2B refused to create a sandbox of template %q (403: %s): the key's team may lack a feature these settings need; change the pool's settings or the team's plan",
		e.Template, e.Message)
}

func (e *ForbiddenError) Unwrap() error { return sandbox.ErrUnavailable }

// PlanLimitError says the pool's sandbox timeout is above the longest sandbox the
// E2B team's plan allows (the API's 400 "Timeout cannot be greater than N hours").
// The pool refuses to run rather than lower the timeout on its own. It wraps
// sandbox.ErrUnavailable.
type PlanLimitError struct {
	Requested, Max time.Duration
}

func (e *PlanLimitError) Error() string {
	return fmt.Sprintf("spec.e2b.sandboxTimeoutSeconds is %d, but the E2B team's plan allows sandboxes of at most %s (%d s): lower sandboxTimeoutSeconds to %d or less, or upgrade the E2B plan",
		int64(e.Requested/time.Second), e.Max, int64(e.Max/time.Second), int64(e.Max/time.Second))
}

func (e *PlanLimitError) Unwrap() error { return sandbox.ErrUnavailable }

// Backend makes E2B pools. It remembers which pool objects live in this process (so
// a pool starting up kills only sandboxes nobody here owns) and what E2B refused (so
// a refused key, or a template refused to a key, is not tried again until it changes).
type Backend struct {
	opts Options
	mu   sync.Mutex
	live map[string]bool
	// rejected maps apiURL+key digest (a 401, a blocked team) or apiURL+key
	// digest+template (a template of another team) to the refusal: only what the
	// answer says is refused.
	rejected map[string]error
}

// NewBackend returns a backend with opts.
func NewBackend(opts Options) *Backend {
	if opts.SandboxURL == nil {
		opts.SandboxURL = DefaultSandboxURL
	}
	if opts.Interpreter == nil {
		opts.Interpreter = CodeInterpreter
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.HTTP == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute // a stream's headers come at once; its body may take the request's timeout
		opts.HTTP = &http.Client{Transport: t}
	}
	if opts.ExecMargin == 0 {
		opts.ExecMargin = 30 * time.Second
	}
	if opts.DefaultExecTimeout == 0 {
		opts.DefaultExecTimeout = 60 * time.Second
	}
	if opts.Maintain == 0 {
		opts.Maintain = 10 * time.Second
	}
	if opts.BackoffBase == 0 {
		opts.BackoffBase = time.Second
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = time.Minute
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = RequestTimeout
	}
	return &Backend{opts: opts, live: map[string]bool{}, rejected: map[string]error{}}
}

func rejectionKey(c Config) string {
	d, _ := c.APIKey.MarshalJSON()
	return c.APIURL + " " + string(d)
}

func templateRejectionKey(c Config) string {
	return rejectionKey(c) + " template " + c.TemplateID
}

// NewPool starts a pool: it kills the pool's sandboxes left by an earlier operator
// (listed by the pool's UID), then creates minReady sandboxes in the background, on
// the shared warm-pool engine (internal/sandbox/warm). A key E2B rejects fails here,
// and is not tried again until it changes.
func (b *Backend) NewPool(cfg sandbox.PoolConfig, c Config) (*Pool, error) {
	if c.APIKey == "" {
		return nil, fmt.Errorf("%w: no E2B API key in %s", sandbox.ErrUnavailable, c.KeySource)
	}
	b.mu.Lock()
	rej := b.rejected[rejectionKey(c)]
	if rej == nil {
		rej = b.rejected[templateRejectionKey(c)]
	}
	b.mu.Unlock()
	if rej != nil {
		return nil, rej
	}
	if u, err := url.Parse(c.APIURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(c.AllowHTTP && u.Scheme == "http")) {
		return nil, fmt.Errorf("%w: E2B API URL %q: %w", sandbox.ErrUnavailable, c.APIURL, ErrInsecureURL)
	}
	if c.SandboxTimeout <= 0 {
		c.SandboxTimeout = 300 * time.Second
	}
	if c.MaxCreatesPerSecond <= 0 {
		c.MaxCreatesPerSecond = 1
	}
	if cfg.MaxSandboxes == 0 {
		cfg.MaxSandboxes = max(cfg.MinReady, 1)
	}
	if err := sandbox.ValidSize(cfg.MinReady, cfg.MaxSandboxes); err != nil {
		return nil, err
	}
	apiHTTP := b.opts.HTTP
	if apiHTTP.Timeout == 0 {
		cp := *apiHTTP
		cp.Timeout = b.opts.RequestTimeout
		apiHTTP = &cp
	}
	tick := b.opts.Maintain
	if third := c.SandboxTimeout / 3; third < tick {
		tick = max(third, time.Second)
	}
	p := &Pool{
		b:        b,
		cfg:      cfg,
		c:        c,
		clock:    b.opts.Clock,
		api:      &Client{APIURL: c.APIURL, APIKey: c.APIKey, AllowHTTP: c.AllowHTTP, HTTP: apiHTTP, Observe: b.opts.Observe},
		tick:     tick,
		instance: newInstanceID(),
		log:      b.opts.Log.WithValues("pool", c.PoolKey),
	}
	b.mu.Lock()
	b.live[p.instance] = true
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.RequestTimeout)
	err := p.reap(ctx)
	cancel()
	switch {
	case IsUnauthorized(err):
		b.mu.Lock()
		delete(b.live, p.instance)
		b.mu.Unlock()
		return nil, p.refusal(err)
	case err != nil:
		p.log.Info("could not list the pool's earlier E2B sandboxes; trying again later", "error", err.Error())
	default:
		p.reaped = true
	}
	p.eng, err = warm.New(provisioner{p}, warm.Options{
		MinReady: cfg.MinReady, MaxSandboxes: cfg.MaxSandboxes,
		Kind:            "E2B",
		Clock:           b.opts.Clock,
		BackoffBase:     b.opts.BackoffBase,
		BackoffMax:      b.opts.BackoffMax,
		StartsPerSecond: c.MaxCreatesPerSecond,
		CallTimeout:     b.opts.RequestTimeout,
		Tick:            tick,
		Degraded:        "E2B sets each sandbox's CPU, memory and disk by its template, so spec.resources do not apply",
		OnStarted:       cfg.OnSandboxStarted,
		Log:             p.log,
	})
	if err != nil {
		b.mu.Lock()
		delete(b.live, p.instance)
		b.mu.Unlock()
		return nil, err
	}
	return p, nil
}

func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Pool is a warm pool of E2B sandboxes: minReady are created ahead, each is killed
// after its request (E2B bills by the second), and replacements are made in the
// background, never faster than MaxCreatesPerSecond, and slower while E2B answers 429.
// Claims, the warm list, replenishment, Resize, Close and Status are the shared
// engine's (internal/sandbox/warm); what is E2B's own is the provisioner
// (provision.go): creation and its failures, keep-alives, and the sweeps.
type Pool struct {
	b        *Backend
	cfg      sandbox.PoolConfig
	c        Config
	clock    clock.WithTicker
	api      *Client
	instance string
	log      logr.Logger
	eng      *warm.Engine
	// tick is how often warm sandboxes are looked after: Options.Maintain, or a third
	// of the sandbox timeout when that is shorter.
	tick time.Duration

	mu sync.Mutex // guards reaped and each box's end times
	// reaped is set once the start-up cleanup of an earlier operator's sandboxes ran.
	reaped bool
}

type box struct {
	pool   *Pool
	ep     Endpoint
	interp Interpreter
	// The rest is guarded by pool.mu.
	expires time.Time // by the pool's reckoning, or E2B's endAt when that is sooner
	// wantEnd is the end the pool last asked for; endAt is E2B's (GET /v2/sandboxes),
	// capped when the plan's maximum lifetime came first (capped).
	wantEnd, endAt time.Time
	capped         bool
}

func (s *box) ID() string { return s.ep.SandboxID }

// Execute sets the sandbox to die a little after the request's timeout (so one the
// operator forgets costs little), then runs the request in its code interpreter.
func (s *box) Execute(ctx context.Context, req sandbox.Request) (*sandbox.Result, error) {
	p := s.pool
	limit := req.Timeout
	if limit <= 0 {
		limit = p.b.opts.DefaultExecTimeout
	}
	life := limit + p.b.opts.ExecMargin
	p.mu.Lock()
	capped, endAt := s.capped, s.endAt
	p.mu.Unlock()
	if capped && endAt.Before(p.clock.Now().Add(life)) {
		// E2B ends the sandbox at its plan's maximum lifetime whatever the timeout
		// set: the run would be cut short. Another sandbox takes it.
		return nil, fmt.Errorf("%w: E2B sandbox %s ends at %s, its plan's maximum lifetime, before this run's %s limit", sandbox.ErrSandboxLost,
			s.ep.SandboxID, endAt.UTC().Format(time.RFC3339), life)
	}
	if err := p.api.SetTimeout(ctx, s.ep.SandboxID, life); err != nil {
		switch {
		case IsNotFound(err):
			return nil, fmt.Errorf("%w: E2B sandbox %s no longer exists (it timed out or was killed)", sandbox.ErrSandboxLost, s.ep.SandboxID)
		case Forbidden(err) == ForbiddenKey || Forbidden(err) == ForbiddenTeam:
			return nil, p.refused(err)
		case IsUnauthorized(err), isUptimeReached(err):
			// A 403 or 400 about this sandbox alone (its maximum uptime reached).
			return nil, fmt.Errorf("%w: E2B sandbox %s: %w", sandbox.ErrSandboxLost, s.ep.SandboxID, err)
		}
		return nil, fmt.Errorf("E2B sandbox %s: %w", s.ep.SandboxID, err)
	}
	p.mu.Lock()
	s.expires = p.clock.Now().Add(life)
	s.wantEnd = s.expires
	p.mu.Unlock()
	res, err := s.interp.Run(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("E2B sandbox %s: %w", s.ep.SandboxID, err)
	}
	res.SandboxID = s.ep.SandboxID
	return res, nil
}

// Acquire implements sandbox.Pool: it takes the warm sandbox ready longest, or waits
// for one (the engine creates one for each waiter, within maxSandboxes).
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	return p.eng.Acquire(ctx, owner)
}

// Release implements sandbox.Pool: the sandbox is killed (never reused) and a
// replacement made if the pool is short of warm ones.
func (p *Pool) Release(sb sandbox.Sandbox) { p.eng.Release(sb) }

// Resize implements sandbox.Pool: an invalid size is rejected (sandbox.ErrInvalidSize)
// and the pool keeps its old one; warm sandboxes beyond the new target are killed
// (they cost money for nothing). It returns the key's rejection, if E2B rejected it
// while the pool ran, so the caller's status shows it.
func (p *Pool) Resize(minReady, maxSandboxes int) error { return p.eng.Resize(minReady, maxSandboxes) }

// Status implements sandbox.Pool, from memory.
func (p *Pool) Status() sandbox.PoolStatus { return p.eng.Status() }

// Close implements sandbox.Pool: it kills every sandbox of the pool and stops
// replenishment. Running executions end with an error and are retried elsewhere.
// It then lists the pool object's sandboxes and kills any it did not know: those of a
// creation whose answer was lost (provisioner.Closed). A creation still in flight
// kills what it made when its answer comes, or sweeps again when its answer is lost
// too.
func (p *Pool) Close() error { return p.eng.Close() }

// interpreterHTTP is hc with E2B's per-sandbox headers added to every request.
func interpreterHTTP(hc *http.Client, ep Endpoint) *http.Client {
	cp := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = &sandboxHeaders{base: base, ep: ep}
	return &cp
}

type sandboxHeaders struct {
	base http.RoundTripper
	ep   Endpoint
}

// RoundTrip adds E2B's routing headers and the traffic token to every request, and
// the envd access token to POST /execute only, as the SDKs send it (e2b-dev/E2B
// sandbox headers; the code interpreter checks neither, E2B's proxy checks the
// traffic token).
func (t *sandboxHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("E2b-Sandbox-Id", t.ep.SandboxID)
	r.Header.Set("E2b-Sandbox-Port", fmt.Sprint(InterpreterPort))
	if t.ep.AccessToken != "" && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/execute") {
		r.Header.Set("X-Access-Token", t.ep.AccessToken)
	} else {
		r.Header.Del("X-Access-Token")
	}
	if t.ep.TrafficToken != "" {
		r.Header.Set(TrafficTokenHeader, t.ep.TrafficToken)
	}
	return t.base.RoundTrip(r)
}

// TrafficTokenHeader carries a sandbox's trafficAccessToken to E2B's proxy
// (e2b-dev/infra orchestrator pkg/proxy/proxy.go).
const TrafficTokenHeader = "e2b-traffic-access-token"
