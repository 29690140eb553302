package e2b

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/vizops/viz-operator/internal/sandbox"
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
// (listed by the pool's UID), then creates minReady sandboxes in the background. A
// key E2B rejects fails here, and is not tried again until it changes.
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
		limiter:  rate.NewLimiter(rate.Limit(c.MaxCreatesPerSecond), 1),
		log:      b.opts.Log.WithValues("pool", c.PoolKey),
		minReady: cfg.MinReady,
		max:      cfg.MaxSandboxes,
		busy:     map[string]*box{},
		wake:     make(chan struct{}, 1),
		avail:    make(chan struct{}),
		stop:     make(chan struct{}),
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
		return nil, p.refused(err)
	case err != nil:
		p.log.Info("could not list the pool's earlier E2B sandboxes; trying again later", "error", err.Error())
	default:
		p.reaped = true
	}
	p.wg.Add(1)
	go p.fill()
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
type Pool struct {
	b        *Backend
	cfg      sandbox.PoolConfig
	c        Config
	clock    clock.WithTicker
	api      *Client
	instance string
	limiter  *rate.Limiter
	log      logr.Logger
	wg       sync.WaitGroup
	// tick is how often warm sandboxes are looked after: Options.Maintain, or a third
	// of the sandbox timeout when that is shorter.
	tick time.Duration

	mu        sync.Mutex
	minReady  int
	max       int
	ready     []*box
	busy      map[string]*box
	starting  int
	killing   int // sandboxes being killed: they still exist, and count against max
	waiters   int
	owners    []string // of the waiting Acquires, oldest first
	closed    bool
	fatal     error     // E2B refused the key, the template, or the timeout: nothing more is tried
	failures  int       // consecutive failed creations
	holdUntil time.Time // no creation before
	throttled string
	lastErr   string // the last creation failure, while creations fail
	reaped    bool
	// lost is set when a creation got no answer: E2B may have made the sandbox
	// anyway. Nothing is created until the pool's sandboxes are listed and the
	// unknown ones killed (sweep).
	lost bool
	// started counts creations begun, so a sweep kills nothing a creation that began
	// while it listed may have made.
	started int
	wake    chan struct{} // tells the filler to look again
	avail   chan struct{} // closed (and replaced) when Acquire callers should look again
	stop    chan struct{}
}

type box struct {
	pool    *Pool
	ep      Endpoint
	interp  Interpreter
	since   time.Time
	expires time.Time // by the pool's reckoning, or E2B's endAt when that is sooner
	owner   string
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

// Acquire implements sandbox.Pool: it takes a warm sandbox, or waits for one (the
// pool creates one for each waiter, within maxSandboxes).
func (p *Pool) Acquire(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	p.mu.Lock()
	p.waiters++
	p.owners = append(p.owners, owner)
	defer func() {
		p.waiters--
		for i, o := range p.owners {
			if o == owner {
				p.owners = append(p.owners[:i], p.owners[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
	}()
	p.kick()
	for {
		switch {
		case p.closed:
			return nil, sandbox.ErrPoolClosed
		case p.fatal != nil:
			return nil, p.fatal
		case len(p.ready) > 0:
			s := p.ready[0]
			p.ready = p.ready[1:]
			s.owner, s.since = owner, p.clock.Now()
			p.busy[s.ep.SandboxID] = s
			p.kick() // a replacement for the warm one taken
			return s, nil
		}
		ch := p.avail
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			p.mu.Lock()
			if p.throttled != "" {
				return nil, fmt.Errorf("no E2B sandbox became ready: %s: %w", p.throttled, ctx.Err())
			}
			return nil, fmt.Errorf("no E2B sandbox became ready: %w", ctx.Err())
		}
		p.mu.Lock()
	}
}

// Release implements sandbox.Pool: the sandbox is killed (never reused) and a
// replacement made if the pool is short of warm ones.
func (p *Pool) Release(sb sandbox.Sandbox) {
	s, ok := sb.(*box)
	if !ok {
		return
	}
	p.mu.Lock()
	if _, mine := p.busy[s.ep.SandboxID]; mine {
		delete(p.busy, s.ep.SandboxID)
		p.killLocked(s.ep.SandboxID)
	}
	p.kick()
	p.mu.Unlock()
}

// Resize implements sandbox.Pool: an invalid size is rejected (sandbox.ErrInvalidSize)
// and the pool keeps its old one. It returns the key's rejection, if E2B rejected it
// while the pool ran, so the caller's status shows it.
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	if err := sandbox.ValidSize(minReady, maxSandboxes); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return sandbox.ErrPoolClosed
	}
	p.minReady, p.max = minReady, maxSandboxes
	var extra []*box
	// Warm sandboxes beyond the new target cost money for nothing: kill them.
	for len(p.ready) > 0 && (len(p.ready) > minReady || len(p.ready)+p.starting+len(p.busy) > maxSandboxes) {
		extra = append(extra, p.ready[len(p.ready)-1])
		p.ready = p.ready[:len(p.ready)-1]
	}
	for _, s := range extra {
		p.killLocked(s.ep.SandboxID)
	}
	p.kick()
	return p.fatal
}

// Status implements sandbox.Pool.
func (p *Pool) Status() sandbox.PoolStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := sandbox.PoolStatus{Ready: len(p.ready), Busy: len(p.busy), Starting: p.starting}
	st.Total = st.Ready + st.Busy + st.Starting
	for _, s := range p.ready {
		st.Sandboxes = append(st.Sandboxes, sandbox.SandboxStatus{ID: s.ep.SandboxID, State: sandbox.StateReady, Since: s.since})
	}
	busy := make([]*box, 0, len(p.busy))
	for _, s := range p.busy {
		busy = append(busy, s)
	}
	sort.Slice(busy, func(i, j int) bool { return busy[i].ep.SandboxID < busy[j].ep.SandboxID })
	for _, s := range busy {
		st.Sandboxes = append(st.Sandboxes, sandbox.SandboxStatus{ID: s.ep.SandboxID, State: sandbox.StateBusy, Since: s.since, Owner: s.owner})
	}
	st.Degraded = "E2B sets each sandbox's CPU, memory and disk by its template, so spec.resources do not apply"
	if p.lastErr != "" {
		st.Degraded += "; creating sandboxes fails: " + p.lastErr
	}
	st.Throttled = p.throttled
	return st
}

// Close implements sandbox.Pool: it kills every sandbox of the pool and stops
// replenishment. Running executions end with an error and are retried elsewhere.
// It then lists the pool object's sandboxes and kills any it did not know: those of a
// creation whose answer was lost. A creation still in flight kills what it made when
// its answer comes, or sweeps again when its answer is lost too.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.broadcast()
	close(p.stop)
	var ids []string
	for _, s := range p.ready {
		ids = append(ids, s.ep.SandboxID)
	}
	for id := range p.busy {
		ids = append(ids, id)
	}
	p.ready, p.busy = nil, map[string]*box{}
	fatal := p.fatal
	p.mu.Unlock()
	p.wg.Wait()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill(id) }()
	}
	wg.Wait()
	if fatal == nil || errors.As(fatal, new(*PlanLimitError)) {
		ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.RequestTimeout)
		if _, err := p.sweep(ctx, true); err != nil {
			p.log.Info("could not list the pool's E2B sandboxes when closing; any left die at their own timeout", "error", err.Error())
		}
		cancel()
	}
	p.b.mu.Lock()
	delete(p.b.live, p.instance)
	p.b.mu.Unlock()
	return nil
}

// kick wakes the filler; callers may hold p.mu.
func (p *Pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes every Acquire; the caller holds p.mu.
func (p *Pool) broadcast() {
	close(p.avail)
	p.avail = make(chan struct{})
}

// deficitLocked is how many sandboxes to start now: enough for minReady plus every
// waiting Acquire, within maxSandboxes.
func (p *Pool) deficitLocked() int {
	want := p.minReady + p.waiters - len(p.ready) - p.starting
	room := p.max - len(p.ready) - len(p.busy) - p.starting - p.killing
	return max(0, min(want, room))
}

// fill creates sandboxes as they are needed, within the rate limit and backoff, and
// keeps warm ones alive. After a creation whose answer was lost it creates nothing
// until a sweep has killed what that creation made.
func (p *Pool) fill() {
	defer p.wg.Done()
	ticker := p.clock.NewTicker(p.tick)
	defer ticker.Stop()
	for {
		now := p.clock.Now()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		n := p.deficitLocked()
		if p.fatal != nil {
			n = 0
		}
		hold := p.holdUntil.Sub(now)
		sweep := p.lost && p.starting == 0 && p.fatal == nil
		if p.lost {
			n = 0 // no creation until the sweep has run
		}
		p.mu.Unlock()
		var wait <-chan time.Time
		switch {
		case sweep && hold <= 0:
			ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.RequestTimeout)
			_, err := p.sweep(ctx, false)
			cancel()
			p.mu.Lock()
			if err != nil {
				p.createFailedLocked(err, p.clock.Now())
			} else {
				p.lost = false
			}
			p.mu.Unlock()
			continue
		case sweep:
			wait = p.clock.After(hold)
		case n > 0 && hold <= 0:
			r := p.limiter.ReserveN(now, 1)
			if d := r.DelayFrom(now); d > 0 {
				select {
				case <-p.clock.After(d):
				case <-p.stop:
					return
				}
			}
			p.mu.Lock()
			if p.closed || p.fatal != nil || p.lost || p.deficitLocked() == 0 || p.clock.Now().Before(p.holdUntil) {
				p.mu.Unlock()
				r.CancelAt(p.clock.Now())
				continue
			}
			p.starting++
			p.started++
			owner := "" // a warm sandbox, or the waiting request it is likely made for
			if i := len(p.ready) + p.starting - 1; i < len(p.owners) {
				owner = p.owners[i]
			}
			p.mu.Unlock()
			go p.create(owner)
			continue
		case n > 0:
			wait = p.clock.After(hold)
		}
		select {
		case <-p.wake:
		case <-wait:
		case <-ticker.C():
			p.maintain()
		case <-p.stop:
			return
		}
	}
}

// create makes one sandbox and adds it to the warm list.
func (p *Pool) create(owner string) {
	start := p.clock.Now()
	md := map[string]string{MetaPool: p.c.PoolKey, MetaPoolUID: p.c.PoolUID, MetaInstance: p.instance}
	if owner != "" {
		md[MetaRequest] = owner
	}
	egress := p.cfg.Network == sandbox.NetworkEgress
	public := false
	ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.RequestTimeout)
	defer cancel()
	sb, err := p.api.Create(ctx, NewSandbox{
		TemplateID:          p.c.TemplateID,
		Timeout:             seconds(p.c.SandboxTimeout),
		Secure:              true, // required by the API for a sandbox without public traffic
		AllowInternetAccess: &egress,
		Network:             &NetworkConfig{AllowPublicTraffic: &public},
		Metadata:            md,
	})
	now := p.clock.Now()
	p.mu.Lock()
	p.starting--
	if err != nil {
		if answerLost(err) {
			p.lost = true
		}
		closed := p.closed
		p.createFailedLocked(err, now)
		p.mu.Unlock()
		if closed && answerLost(err) {
			// Close has swept already; this creation's sandbox may be there now.
			ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.RequestTimeout)
			_, _ = p.sweep(ctx, true)
			cancel()
		}
		return
	}
	if p.closed {
		p.mu.Unlock()
		p.kill(sb.SandboxID)
		return
	}
	p.failures, p.throttled, p.lastErr = 0, "", ""
	domain := p.c.Domain
	if sb.Domain != nil && *sb.Domain != "" {
		domain = *sb.Domain
	}
	ep := Endpoint{SandboxID: sb.SandboxID, URL: p.b.opts.SandboxURL(sb.SandboxID, domain), AccessToken: sb.EnvdAccessToken}
	if sb.TrafficAccessToken != nil {
		ep.TrafficToken = *sb.TrafficAccessToken
	}
	end := now.Add(time.Duration(seconds(p.c.SandboxTimeout)) * time.Second)
	s := &box{pool: p, ep: ep, since: now, expires: end, wantEnd: end}
	s.interp = p.b.opts.Interpreter(ep, interpreterHTTP(p.b.opts.HTTP, ep))
	p.ready = append(p.ready, s)
	p.broadcast()
	p.mu.Unlock()
	if p.cfg.OnSandboxStarted != nil {
		p.cfg.OnSandboxStarted(now.Sub(start))
	}
}

// answerLost reports a creation that may have succeeded at E2B without the pool
// hearing of it: no answer (a timeout, a reset connection) or a gateway's 502/504.
func answerLost(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Code == 0 || e.Code == http.StatusBadGateway || e.Code == http.StatusGatewayTimeout)
}

// isUptimeReached is the API's answer to a set-timeout past the plan's maximum
// sandbox length ("Sandbox has reached maximum allowed uptime").
func isUptimeReached(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Code == http.StatusBadRequest || e.Code == http.StatusForbidden) &&
		strings.Contains(strings.ToLower(e.Message), "maximum allowed uptime")
}

// createFailedLocked decides what a failed creation means: a refused key, team or
// template, or a timeout above the plan's, stops the pool; 429 holds creation for
// Retry-After when E2B gave one (the rate limit), or for the pool's own backoff when
// it did not (the plan's concurrent-sandbox limit); anything else backs off
// exponentially. Waiting Acquires keep waiting, except when the pool stops.
func (p *Pool) createFailedLocked(err error, now time.Time) {
	if IsUnauthorized(err) {
		p.fatal = p.refusedLocked(err)
		p.broadcast()
		return
	}
	if limit, ok := PlanMaxTimeout(err); ok {
		p.fatal = &PlanLimitError{Requested: p.c.SandboxTimeout, Max: limit}
		p.log.Info("the E2B plan allows shorter sandboxes than the pool's timeout; the pool stops until its settings change", "maxTimeout", limit.String())
		p.broadcast()
		return
	}
	p.failures++
	delay := p.b.opts.BackoffBase
	for i := 1; i < p.failures && delay < p.b.opts.BackoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, p.b.opts.BackoffMax)
	if ra, ok := IsRateLimited(err); ok {
		var ae *APIError
		_ = errors.As(err, &ae)
		if ra > 0 {
			delay = max(delay, ra)
			p.throttled = fmt.Sprintf("E2B answered 429 Too Many Requests (%s) to %d creation(s) in a row; creating sandboxes resumes at %s (Retry-After %s). Raise your E2B plan's limits or lower maxSandboxes; spec.e2b.maxCreatesPerSecond is %g",
				ae.Message, p.failures, now.Add(delay).UTC().Format(time.RFC3339), ra, p.c.MaxCreatesPerSecond)
		} else {
			p.throttled = fmt.Sprintf("E2B answered 429 Too Many Requests (%s) to %d creation(s) in a row, without Retry-After (the plan's concurrent-sandbox limit); the pool backs off and tries again at %s. Lower maxSandboxes to the plan's limit, or raise the plan's",
				ae.Message, p.failures, now.Add(delay).UTC().Format(time.RFC3339))
		}
		p.lastErr = ""
	} else {
		p.lastErr = err.Error()
	}
	p.holdUntil = now.Add(delay)
	p.log.Info("creating an E2B sandbox failed; backing off", "error", err.Error(), "retryIn", delay.String(), "failures", p.failures)
}

// refused records a 401 or 403 (see refusedLocked) and returns the pool's error.
func (p *Pool) refused(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fatal == nil {
		p.fatal = p.refusedLocked(err)
		p.broadcast()
	}
	return p.fatal
}

// refusedLocked turns a 401 or 403 into the pool's error, and remembers in the
// backend only what the answer refuses: the key (401, a blocked team) for every
// pool using it, a template for the pools using it with this key, and a request's
// settings (any other 403) for this pool alone.
func (p *Pool) refusedLocked(err error) error {
	var ae *APIError
	code, msg := http.StatusUnauthorized, ""
	if errors.As(err, &ae) {
		code, msg = ae.Code, ae.Message
	}
	var rej error
	key := ""
	switch kind := Forbidden(err); kind {
	case ForbiddenTeam:
		rej, key = &ForbiddenError{Kind: kind, Source: p.c.KeySource, Template: p.c.TemplateID, Message: msg}, rejectionKey(p.c)
	case ForbiddenTemplate:
		rej, key = &ForbiddenError{Kind: kind, Source: p.c.KeySource, Template: p.c.TemplateID, Message: msg}, templateRejectionKey(p.c)
	case ForbiddenRequest:
		rej = &ForbiddenError{Kind: kind, Source: p.c.KeySource, Template: p.c.TemplateID, Message: msg}
	default:
		rej, key = &KeyRejectedError{Source: p.c.KeySource, Code: code}, rejectionKey(p.c)
	}
	if key != "" {
		p.b.mu.Lock()
		p.b.rejected[key] = rej
		p.b.mu.Unlock()
	}
	p.log.Info("E2B refused the pool's requests; the pool stops until its settings or key change", "keySource", p.c.KeySource, "code", code, "reason", rej.Error())
	return rej
}

// maintain retries the start-up cleanup if it failed, and extends warm sandboxes
// that would otherwise expire within a third of their timeout or two ticks (the
// tick is at most a third of the timeout, so a sandbox is extended at least twice
// before it could expire). After extending it reads each sandbox's real end from E2B
// (endAt, which the plan's maximum lifetime caps without a word): a warm sandbox
// that ends within the same margin is killed and replaced before E2B ends it.
func (p *Pool) maintain() {
	p.mu.Lock()
	if p.fatal != nil || p.closed {
		p.mu.Unlock()
		return
	}
	reaped := p.reaped
	now := p.clock.Now()
	var extend []*box
	threshold := p.keepAliveThreshold()
	for _, s := range p.ready {
		if s.expires.Sub(now) <= threshold {
			extend = append(extend, s)
		}
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.RequestTimeout)
	defer cancel()
	if !reaped {
		err := p.reap(ctx)
		if IsUnauthorized(err) {
			_ = p.refused(err)
			return
		}
		p.mu.Lock()
		p.reaped = err == nil
		p.mu.Unlock()
	}
	for _, s := range extend {
		err := p.api.SetTimeout(ctx, s.ep.SandboxID, p.c.SandboxTimeout)
		p.mu.Lock()
		switch {
		case err == nil:
			s.expires = p.clock.Now().Add(p.c.SandboxTimeout)
			s.wantEnd = s.expires
		case IsNotFound(err), isUptimeReached(err):
			p.retireLocked(s)
		}
		p.mu.Unlock()
		if Forbidden(err) == ForbiddenKey || Forbidden(err) == ForbiddenTeam {
			_ = p.refused(err)
			return
		}
	}
	if len(extend) > 0 {
		if _, err := p.sweep(ctx, false); err != nil {
			p.log.Info("could not list the pool's E2B sandboxes to read their end times", "error", err.Error())
		}
	}
}

// keepAliveThreshold is how close to its end a warm sandbox is extended (and, when
// E2B's endAt is that close, replaced).
func (p *Pool) keepAliveThreshold() time.Duration {
	return max(p.c.SandboxTimeout/3, 2*p.tick)
}

// retireLocked drops a warm sandbox, kills it in the background, and has the filler
// make a replacement.
func (p *Pool) retireLocked(s *box) {
	for i, r := range p.ready {
		if r == s {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			p.killLocked(s.ep.SandboxID)
			break
		}
	}
	p.kick()
}

// sweep lists this pool object's sandboxes at E2B (by its instance metadata). For
// the ones it holds, it records E2B's endAt, and retires a warm one that ends within
// the keep-alive margin (capped by the plan's maximum lifetime). The ones it does not
// hold were made by a creation whose answer was lost: they are killed, unless a
// creation was in flight (its sandbox may be among them); all is true at Close,
// when every listed sandbox is killed.
func (p *Pool) sweep(ctx context.Context, all bool) (killed int, err error) {
	p.mu.Lock()
	startedBefore, inFlight := p.started, p.starting
	p.mu.Unlock()
	list, err := p.api.List(ctx, map[string]string{MetaPoolUID: p.c.PoolUID, MetaInstance: p.instance})
	if err != nil {
		return 0, err
	}
	var kill []string
	p.mu.Lock()
	now := p.clock.Now()
	known := map[string]*box{}
	for _, s := range p.ready {
		known[s.ep.SandboxID] = s
	}
	for id, s := range p.busy {
		known[id] = s
	}
	quiet := inFlight == 0 && p.starting == 0 && p.started == startedBefore
	threshold := p.keepAliveThreshold()
	for _, sb := range list {
		if sb.Metadata[MetaInstance] != p.instance {
			continue // the API filtered; this guards against one that does not
		}
		s, ok := known[sb.SandboxID]
		switch {
		case all || (!ok && quiet):
			kill = append(kill, sb.SandboxID)
		case ok && !sb.EndAt.IsZero():
			s.endAt = sb.EndAt
			// A sandbox whose end E2B put well before the one asked for was capped
			// (5 s allow for rounding to seconds and the clocks' skew).
			s.capped = sb.EndAt.Before(s.wantEnd.Add(-5 * time.Second))
			if sb.EndAt.Before(s.expires) {
				s.expires = sb.EndAt
			}
			if _, warm := p.busy[sb.SandboxID]; !warm && s.capped && sb.EndAt.Sub(now) <= threshold {
				p.log.Info("an E2B sandbox reaches its plan's maximum lifetime soon; replacing it", "sandbox", sb.SandboxID, "endAt", sb.EndAt)
				p.retireLocked(s)
			}
		}
	}
	p.mu.Unlock()
	for _, id := range kill {
		if err := p.api.Kill(ctx, id); err != nil && !IsNotFound(err) {
			p.log.Info("could not kill an E2B sandbox; it dies at its own timeout", "sandbox", id, "error", err.Error())
			continue
		}
		if !all {
			p.log.Info("killed an E2B sandbox made by a creation whose answer was lost", "sandbox", id)
		}
		killed++
	}
	return killed, nil
}

// reap kills the sandboxes carrying this pool's UID that no live pool object of this
// process owns: those of an operator that stopped, or crashed, before killing them.
func (p *Pool) reap(ctx context.Context) error {
	list, err := p.api.List(ctx, map[string]string{MetaPoolUID: p.c.PoolUID})
	if err != nil {
		return err
	}
	for _, sb := range list {
		if sb.Metadata[MetaPoolUID] != p.c.PoolUID {
			continue // the API filtered; this guards against one that does not
		}
		p.b.mu.Lock()
		live := p.b.live[sb.Metadata[MetaInstance]]
		p.b.mu.Unlock()
		if live {
			continue
		}
		if err := p.api.Kill(ctx, sb.SandboxID); err != nil && !IsNotFound(err) {
			p.log.Info("could not kill an orphaned E2B sandbox; it dies at its own timeout", "sandbox", sb.SandboxID, "error", err.Error())
			continue
		}
		p.log.Info("killed an orphaned E2B sandbox", "sandbox", sb.SandboxID)
	}
	return nil
}

// killLocked kills a sandbox the pool no longer holds, in the background. Until
// E2B has answered it counts against maxSandboxes, so no replacement is made while
// it may still exist.
func (p *Pool) killLocked(id string) {
	p.killing++
	go func() {
		p.kill(id)
		p.mu.Lock()
		p.killing--
		p.mu.Unlock()
		p.kick()
	}()
}

// kill kills a sandbox; a 404 means it is gone already.
func (p *Pool) kill(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), p.b.opts.RequestTimeout)
	defer cancel()
	if err := p.api.Kill(ctx, id); err != nil && !IsNotFound(err) {
		p.log.Info("could not kill an E2B sandbox; it dies at its own timeout", "sandbox", id, "error", err.Error())
	}
}

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
