package e2b

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vizops/viz-operator/internal/sandbox"
	"github.com/vizops/viz-operator/internal/sandbox/warm"
)

// provisioner is what the warm-pool engine needs of E2B: creating and killing one
// sandbox, reading a failed creation (warm.FailureJudge), sweeping after a creation
// whose answer was lost (warm.Sweeper), keeping warm sandboxes alive
// (warm.Maintainer) and the last sweep at Close (warm.Closer).
type provisioner struct{ p *Pool }

var (
	_ warm.Provisioner  = provisioner{}
	_ warm.FailureJudge = provisioner{}
	_ warm.Sweeper      = provisioner{}
	_ warm.Maintainer   = provisioner{}
	_ warm.Closer       = provisioner{}
)

// Start creates one sandbox, private (no public traffic), with the pool's metadata
// and, when made for a waiting request, that request's name.
func (v provisioner) Start(ctx context.Context, owner string) (sandbox.Sandbox, error) {
	p := v.p
	md := map[string]string{MetaPool: p.c.PoolKey, MetaPoolUID: p.c.PoolUID, MetaInstance: p.instance}
	if owner != "" {
		md[MetaRequest] = owner
	}
	egress := p.cfg.Network == sandbox.NetworkEgress
	public := false
	sb, err := p.api.Create(ctx, NewSandbox{
		TemplateID:          p.c.TemplateID,
		Timeout:             seconds(p.c.SandboxTimeout),
		Secure:              true, // required by the API for a sandbox without public traffic
		AllowInternetAccess: &egress,
		Network:             &NetworkConfig{AllowPublicTraffic: &public},
		Metadata:            md,
	})
	if err != nil {
		return nil, err
	}
	domain := p.c.Domain
	if sb.Domain != nil && *sb.Domain != "" {
		domain = *sb.Domain
	}
	ep := Endpoint{SandboxID: sb.SandboxID, URL: p.b.opts.SandboxURL(sb.SandboxID, domain), AccessToken: sb.EnvdAccessToken}
	if sb.TrafficAccessToken != nil {
		ep.TrafficToken = *sb.TrafficAccessToken
	}
	end := p.clock.Now().Add(time.Duration(seconds(p.c.SandboxTimeout)) * time.Second)
	s := &box{pool: p, ep: ep, expires: end, wantEnd: end}
	s.interp = p.b.opts.Interpreter(ep, interpreterHTTP(p.b.opts.HTTP, ep))
	return s, nil
}

// Destroy kills a sandbox; a 404 means it is gone already.
func (v provisioner) Destroy(ctx context.Context, sb sandbox.Sandbox) { v.p.kill(ctx, sb.ID()) }

// Judge decides what a failed creation means: a refused key, team or template, or a
// timeout above the plan's, stops the pool; 429 holds creation for Retry-After when
// E2B gave one (the rate limit), or for the engine's backoff when it did not (the
// plan's concurrent-sandbox limit); a creation without an answer may have made a
// sandbox (unsure: swept before the next); anything else backs off exponentially.
func (v provisioner) Judge(f warm.Failure) warm.Failure {
	p := v.p
	err := f.Err
	f.Unsure = answerLost(err)
	if IsUnauthorized(err) {
		f.Fatal = p.refusal(err)
		return f
	}
	if limit, ok := PlanMaxTimeout(err); ok {
		f.Fatal = &PlanLimitError{Requested: p.c.SandboxTimeout, Max: limit}
		p.log.Info("the E2B plan allows shorter sandboxes than the pool's timeout; the pool stops until its settings change", "maxTimeout", limit.String())
		return f
	}
	if ra, ok := IsRateLimited(err); ok {
		var ae *APIError
		_ = errors.As(err, &ae)
		if ra > 0 {
			f.Hold = max(f.Hold, ra)
			f.Throttled = fmt.Sprintf("E2B answered 429 Too Many Requests (%s) to %d creation(s) in a row; creating sandboxes resumes at %s (Retry-After %s). Raise your E2B plan's limits or lower maxSandboxes; spec.e2b.maxCreatesPerSecond is %g",
				ae.Message, f.Failures, f.Now.Add(f.Hold).UTC().Format(time.RFC3339), ra, p.c.MaxCreatesPerSecond)
		} else {
			f.Throttled = fmt.Sprintf("E2B answered 429 Too Many Requests (%s) to %d creation(s) in a row, without Retry-After (the plan's concurrent-sandbox limit); the pool backs off and tries again at %s. Lower maxSandboxes to the plan's limit, or raise the plan's",
				ae.Message, f.Failures, f.Now.Add(f.Hold).UTC().Format(time.RFC3339))
		}
		f.Reason = ""
	}
	return f
}

// Sweep lists this pool object's sandboxes at E2B (by its instance metadata) and
// kills the ones held does not name: those a creation whose answer was lost made
// (the engine sweeps with no creation in flight), or every one after Close.
func (v provisioner) Sweep(ctx context.Context, held func(id string) bool) error {
	p := v.p
	list, err := p.api.List(ctx, map[string]string{MetaPoolUID: p.c.PoolUID, MetaInstance: p.instance})
	if err != nil {
		return err
	}
	for _, sb := range list {
		if sb.Metadata[MetaInstance] != p.instance || held(sb.SandboxID) {
			continue // the API filtered; this guards against one that does not
		}
		if err := p.api.Kill(ctx, sb.SandboxID); err != nil && !IsNotFound(err) {
			p.log.Info("could not kill an E2B sandbox; it dies at its own timeout", "sandbox", sb.SandboxID, "error", err.Error())
			continue
		}
		p.log.Info("killed an E2B sandbox the pool did not hold (a creation whose answer was lost)", "sandbox", sb.SandboxID)
	}
	return nil
}

// Closed lists the pool object's sandboxes after Close and kills any left: those of
// a creation whose answer was lost. A refused key cannot list; a plan limit can.
func (v provisioner) Closed(ctx context.Context, fatal error) {
	p := v.p
	if fatal == nil || errors.As(fatal, new(*PlanLimitError)) {
		if err := v.Sweep(ctx, func(string) bool { return false }); err != nil {
			p.log.Info("could not list the pool's E2B sandboxes when closing; any left die at their own timeout", "error", err.Error())
		}
	}
	p.b.mu.Lock()
	delete(p.b.live, p.instance)
	p.b.mu.Unlock()
}

// Maintain retries the start-up cleanup if it failed, and extends warm sandboxes
// that would otherwise expire within a third of their timeout or two ticks (the
// tick is at most a third of the timeout, so a sandbox is extended at least twice
// before it could expire). After extending it reads each sandbox's real end from E2B
// (endAt, which the plan's maximum lifetime caps without a word): a warm sandbox
// that ends within the same margin is killed and replaced before E2B ends it.
func (v provisioner) Maintain(ctx context.Context) {
	p := v.p
	if p.eng.Err() != nil {
		return
	}
	ready, _ := p.eng.Held()
	p.mu.Lock()
	reaped := p.reaped
	now := p.clock.Now()
	var extend []*box
	threshold := p.keepAliveThreshold()
	for _, sb := range ready {
		if s := sb.(*box); s.expires.Sub(now) <= threshold {
			extend = append(extend, s)
		}
	}
	p.mu.Unlock()
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
		switch {
		case err == nil:
			p.mu.Lock()
			s.expires = p.clock.Now().Add(p.c.SandboxTimeout)
			s.wantEnd = s.expires
			p.mu.Unlock()
		case IsNotFound(err), isUptimeReached(err):
			p.eng.Retire(s)
		}
		if Forbidden(err) == ForbiddenKey || Forbidden(err) == ForbiddenTeam {
			_ = p.refused(err)
			return
		}
	}
	if len(extend) > 0 {
		if err := p.readEnds(ctx); err != nil {
			p.log.Info("could not list the pool's E2B sandboxes to read their end times", "error", err.Error())
		}
	}
}

// readEnds lists this pool object's sandboxes at E2B and records each held one's
// endAt; a warm one that E2B ends (capped by the plan's maximum lifetime) within the
// keep-alive margin is retired.
func (p *Pool) readEnds(ctx context.Context) error {
	list, err := p.api.List(ctx, map[string]string{MetaPoolUID: p.c.PoolUID, MetaInstance: p.instance})
	if err != nil {
		return err
	}
	ready, busy := p.eng.Held()
	known := map[string]*box{}
	warmNow := map[string]bool{}
	for _, sb := range ready {
		known[sb.ID()] = sb.(*box)
		warmNow[sb.ID()] = true
	}
	for _, sb := range busy {
		known[sb.ID()] = sb.(*box)
	}
	var retire []*box
	p.mu.Lock()
	now := p.clock.Now()
	threshold := p.keepAliveThreshold()
	for _, sb := range list {
		s, ok := known[sb.SandboxID]
		if !ok || sb.EndAt.IsZero() {
			continue
		}
		s.endAt = sb.EndAt
		// A sandbox whose end E2B put well before the one asked for was capped
		// (5 s allow for rounding to seconds and the clocks' skew).
		s.capped = sb.EndAt.Before(s.wantEnd.Add(-5 * time.Second))
		if sb.EndAt.Before(s.expires) {
			s.expires = sb.EndAt
		}
		if warmNow[sb.SandboxID] && s.capped && sb.EndAt.Sub(now) <= threshold {
			p.log.Info("an E2B sandbox reaches its plan's maximum lifetime soon; replacing it", "sandbox", sb.SandboxID, "endAt", sb.EndAt)
			retire = append(retire, s)
		}
	}
	p.mu.Unlock()
	for _, s := range retire {
		p.eng.Retire(s)
	}
	return nil
}

// keepAliveThreshold is how close to its end a warm sandbox is extended (and, when
// E2B's endAt is that close, replaced).
func (p *Pool) keepAliveThreshold() time.Duration {
	return max(p.c.SandboxTimeout/3, 2*p.tick)
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

// refused stops the pool with a 401 or 403 (see refusal) found outside a creation,
// and returns the pool's error.
func (p *Pool) refused(err error) error {
	if fatal := p.eng.Err(); fatal != nil {
		return fatal
	}
	return p.eng.Fail(p.refusal(err))
}

// refusal turns a 401 or 403 into the pool's error, and remembers in the backend
// only what the answer refuses: the key (401, a blocked team) for every pool using
// it, a template for the pools using it with this key, and a request's settings (any
// other 403) for this pool alone.
func (p *Pool) refusal(err error) error {
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
func (p *Pool) kill(ctx context.Context, id string) {
	if err := p.api.Kill(ctx, id); err != nil && !IsNotFound(err) {
		p.log.Info("could not kill an E2B sandbox; it dies at its own timeout", "sandbox", id, "error", err.Error())
	}
}
