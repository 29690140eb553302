package e2b

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
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
}

// Endpoint is where one sandbox's code interpreter answers.
type Endpoint struct {
	SandboxID string
	// URL is https://49999-<sandboxID>.<domain> (Options.SandboxURL decides).
	URL string
	// AccessToken is the sandbox's envdAccessToken, sent as X-Access-Token.
	AccessToken string
	// TrafficToken, when the API returns one, is sent as E2B-Traffic-Access-Token.
	TrafficToken string
}

// Interpreter runs one request, in a fresh context, in one sandbox's code
// interpreter (codeinterpreter.Client implements it).
type Interpreter interface {
	Run(ctx context.Context, req sandbox.Request) (*sandbox.Result, error)
}

// InterpreterFunc makes the interpreter client of one sandbox. hc already carries
// E2B's routing and auth headers (E2b-Sandbox-Id, E2b-Sandbox-Port, X-Access-Token).
type InterpreterFunc func(ep Endpoint, hc *http.Client) Interpreter

// Options are the backend's process-wide settings.
type Options struct {
	// Interpreter makes each sandbox's interpreter client (nil: CodeInterpreter).
	Interpreter InterpreterFunc
	// HTTP is used for API calls and, with E2B's headers added, for the
	// interpreters (nil: one with a 1 min response-header timeout; API calls also get
	// a 30 s overall timeout, runs none beyond their context).
	HTTP *http.Client
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
	// Maintain is how often warm sandboxes are checked and extended (0: 10 s).
	Maintain time.Duration
	// BackoffBase and BackoffMax bound the wait after a failed creation (0: 1 s, 60 s).
	BackoffBase, BackoffMax time.Duration
}

// DefaultSandboxURL is the SDKs' rule for a sandbox port's address:
// https://<port>-<sandboxID>.<domain>.
func DefaultSandboxURL(sandboxID, domain string) string {
	return fmt.Sprintf("https://%d-%s.%s", InterpreterPort, sandboxID, domain)
}

// KeyRejectedError says E2B refused the pool's API key (401 or 403). It wraps
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

// Backend makes E2B pools. It remembers which pool objects live in this process (so
// a pool starting up kills only sandboxes nobody here owns) and which keys E2B
// rejected (so a rejected key is not tried again until it changes).
type Backend struct {
	opts Options
	mu   sync.Mutex
	live map[string]bool
	// rejected maps apiURL+key digest to the rejection.
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
	return &Backend{opts: opts, live: map[string]bool{}, rejected: map[string]error{}}
}

// Factory adapts the backend to the sandbox registry; backendConfig must be a Config.
func (b *Backend) Factory() sandbox.Factory {
	return func(cfg sandbox.PoolConfig, backendConfig any) (sandbox.Pool, error) {
		c, ok := backendConfig.(Config)
		if !ok {
			return nil, fmt.Errorf("%w: the E2B backend got no E2B settings", sandbox.ErrUnavailable)
		}
		return b.NewPool(cfg, c)
	}
}

func rejectionKey(c Config) string {
	d, _ := c.APIKey.MarshalJSON()
	return c.APIURL + " " + string(d)
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
	b.mu.Unlock()
	if rej != nil {
		return nil, rej
	}
	if c.SandboxTimeout <= 0 {
		c.SandboxTimeout = 300 * time.Second
	}
	if c.MaxCreatesPerSecond <= 0 {
		c.MaxCreatesPerSecond = 1
	}
	if cfg.MaxSandboxes < 1 {
		cfg.MaxSandboxes = 1
	}
	apiHTTP := b.opts.HTTP
	if apiHTTP.Timeout == 0 {
		cp := *apiHTTP
		cp.Timeout = 30 * time.Second
		apiHTTP = &cp
	}
	p := &Pool{
		b:        b,
		cfg:      cfg,
		c:        c,
		clock:    b.opts.Clock,
		api:      &Client{APIURL: c.APIURL, APIKey: c.APIKey, HTTP: apiHTTP, Observe: b.opts.Observe},
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := p.reap(ctx)
	cancel()
	switch {
	case IsUnauthorized(err):
		b.mu.Lock()
		delete(b.live, p.instance)
		b.mu.Unlock()
		return nil, p.rejectedKey(err)
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

	mu        sync.Mutex
	minReady  int
	max       int
	ready     []*box
	busy      map[string]*box
	starting  int
	waiters   int
	owners    []string // of the waiting Acquires, oldest first
	closed    bool
	fatal     error     // the key was rejected: nothing more is tried
	failures  int       // consecutive failed creations
	holdUntil time.Time // no creation before
	throttled string
	lastErr   string // the last creation failure, while creations fail
	reaped    bool
	wake      chan struct{} // tells the filler to look again
	avail     chan struct{} // closed (and replaced) when Acquire callers should look again
	stop      chan struct{}
}

type box struct {
	pool    *Pool
	ep      Endpoint
	interp  Interpreter
	since   time.Time
	expires time.Time
	owner   string
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
	if err := p.api.SetTimeout(ctx, s.ep.SandboxID, life); err != nil {
		switch {
		case IsNotFound(err):
			return nil, fmt.Errorf("%w: E2B sandbox %s no longer exists (it timed out or was killed)", sandbox.ErrSandboxLost, s.ep.SandboxID)
		case IsUnauthorized(err):
			return nil, p.rejectedKey(err)
		}
		return nil, fmt.Errorf("E2B sandbox %s: %w", s.ep.SandboxID, err)
	}
	p.mu.Lock()
	s.expires = p.clock.Now().Add(life)
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
	_, mine := p.busy[s.ep.SandboxID]
	delete(p.busy, s.ep.SandboxID)
	p.kick()
	p.mu.Unlock()
	if mine {
		go p.kill(s.ep.SandboxID)
	}
}

// Resize implements sandbox.Pool. It returns the key's rejection, if E2B rejected it
// while the pool ran, so the caller's status shows it.
func (p *Pool) Resize(minReady, maxSandboxes int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if maxSandboxes < 1 {
		maxSandboxes = 1
	}
	p.minReady, p.max = minReady, maxSandboxes
	var extra []*box
	// Warm sandboxes beyond the new target cost money for nothing: kill them.
	for len(p.ready) > 0 && (len(p.ready) > minReady || len(p.ready)+p.starting+len(p.busy) > maxSandboxes) {
		extra = append(extra, p.ready[len(p.ready)-1])
		p.ready = p.ready[:len(p.ready)-1]
	}
	for _, s := range extra {
		go p.kill(s.ep.SandboxID)
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
	p.mu.Unlock()
	p.wg.Wait()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill(id) }()
	}
	wg.Wait()
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
	room := p.max - len(p.ready) - len(p.busy) - p.starting
	return max(0, min(want, room))
}

// fill creates sandboxes as they are needed, within the rate limit and backoff, and
// keeps warm ones alive.
func (p *Pool) fill() {
	defer p.wg.Done()
	ticker := p.clock.NewTicker(p.b.opts.Maintain)
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
		p.mu.Unlock()
		var wait <-chan time.Time
		switch {
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
			if p.closed || p.fatal != nil || p.deficitLocked() == 0 || p.clock.Now().Before(p.holdUntil) {
				p.mu.Unlock()
				r.CancelAt(p.clock.Now())
				continue
			}
			p.starting++
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := p.api.Create(ctx, NewSandbox{
		TemplateID:          p.c.TemplateID,
		Timeout:             seconds(p.c.SandboxTimeout),
		Secure:              true,
		AllowInternetAccess: &egress,
		Metadata:            md,
	})
	now := p.clock.Now()
	p.mu.Lock()
	p.starting--
	if err != nil {
		p.createFailedLocked(err, now)
		p.mu.Unlock()
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
	s := &box{pool: p, ep: ep, since: now, expires: now.Add(time.Duration(seconds(p.c.SandboxTimeout)) * time.Second)}
	s.interp = p.b.opts.Interpreter(ep, interpreterHTTP(p.b.opts.HTTP, ep))
	p.ready = append(p.ready, s)
	p.broadcast()
	p.mu.Unlock()
	if p.cfg.OnSandboxStarted != nil {
		p.cfg.OnSandboxStarted(now.Sub(start))
	}
}

// createFailedLocked decides what a failed creation means: a rejected key stops the
// pool; 429 holds creation for Retry-After (at least the backoff); anything else
// backs off exponentially. Waiting Acquires keep waiting, except on a rejected key.
func (p *Pool) createFailedLocked(err error, now time.Time) {
	if IsUnauthorized(err) {
		p.fatal = p.rejectedKeyLocked(err)
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
		delay = max(delay, ra)
		p.throttled = fmt.Sprintf("E2B answered 429 Too Many Requests to %d creation(s) in a row; creating sandboxes resumes at %s (Retry-After %s). Raise your E2B plan's limits or lower maxSandboxes; spec.e2b.maxCreatesPerSecond is %g",
			p.failures, now.Add(delay).UTC().Format(time.RFC3339), ra, p.c.MaxCreatesPerSecond)
		p.lastErr = ""
	} else {
		p.lastErr = err.Error()
	}
	p.holdUntil = now.Add(delay)
	p.log.Info("creating an E2B sandbox failed; backing off", "error", err.Error(), "retryIn", delay.String(), "failures", p.failures)
}

func (p *Pool) rejectedKey(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fatal == nil {
		p.fatal = p.rejectedKeyLocked(err)
		p.broadcast()
	}
	return p.fatal
}

func (p *Pool) rejectedKeyLocked(err error) error {
	var ae *APIError
	code := http.StatusUnauthorized
	if errors.As(err, &ae) {
		code = ae.Code
	}
	rej := &KeyRejectedError{Source: p.c.KeySource, Code: code}
	p.b.mu.Lock()
	p.b.rejected[rejectionKey(p.c)] = rej
	p.b.mu.Unlock()
	p.log.Info("E2B rejected the API key; the pool stops until the key changes", "keySource", p.c.KeySource, "code", code)
	return rej
}

// maintain retries the start-up cleanup if it failed, and extends warm sandboxes
// that would otherwise expire within a third of their timeout (or two ticks).
func (p *Pool) maintain() {
	p.mu.Lock()
	if p.fatal != nil || p.closed {
		p.mu.Unlock()
		return
	}
	reaped := p.reaped
	now := p.clock.Now()
	var extend []*box
	threshold := max(p.c.SandboxTimeout/3, 2*p.b.opts.Maintain)
	for _, s := range p.ready {
		if s.expires.Sub(now) <= threshold {
			extend = append(extend, s)
		}
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !reaped {
		err := p.reap(ctx)
		if IsUnauthorized(err) {
			_ = p.rejectedKey(err)
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
		case IsNotFound(err):
			p.dropReadyLocked(s)
			p.kick()
		}
		p.mu.Unlock()
		if IsUnauthorized(err) {
			_ = p.rejectedKey(err)
			return
		}
	}
}

func (p *Pool) dropReadyLocked(s *box) {
	for i, r := range p.ready {
		if r == s {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			return
		}
	}
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

// kill kills a sandbox; a 404 means it is gone already.
func (p *Pool) kill(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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

func (t *sandboxHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("E2b-Sandbox-Id", t.ep.SandboxID)
	r.Header.Set("E2b-Sandbox-Port", fmt.Sprint(InterpreterPort))
	if t.ep.AccessToken != "" {
		r.Header.Set("X-Access-Token", t.ep.AccessToken)
	}
	if t.ep.TrafficToken != "" {
		r.Header.Set("E2B-Traffic-Access-Token", t.ep.TrafficToken)
	}
	return t.base.RoundTrip(r)
}
