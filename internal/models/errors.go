package models

import (
	"fmt"
	"strings"
)

// ReasonProviderUnavailable is the condition reason for every terminal provider problem:
// an unknown provider, a missing Secret or key, a rejected key, a bad config.
const ReasonProviderUnavailable = "ProviderUnavailable"

// ConfigError is a terminal problem with a provider's configuration: retrying will not
// help until a person changes the providers file, a Secret or spec.model. Its message
// names the provider and what to do, and never contains an API key.
type ConfigError struct {
	// Provider is the provider name involved (may be empty for a file-level problem).
	Provider string
	// Field is the config field at fault, e.g. "providers[1].baseURL" (may be empty).
	Field string
	// Message says what is wrong and what to do.
	Message string
}

func (e *ConfigError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Reason is the CamelCase condition reason for this error. Only terminal errors have a
// Reason method: callers (the controller) treat "has Reason()" as "retrying cannot help".
func (e *ConfigError) Reason() string { return ReasonProviderUnavailable }

// UnavailableError is a transient provider failure: HTTP 429 or 5xx, a timeout, a
// connection that could not be made. The client already retried it a bounded number of
// times; a caller may degrade (use a template) or retry later.
type UnavailableError struct {
	Provider string
	// StatusCode is the last HTTP status seen (0 when no response came back).
	StatusCode int
	// Attempts is how many HTTP requests were made.
	Attempts int
	// Message says what happened.
	Message string
}

func (e *UnavailableError) Error() string {
	s := fmt.Sprintf("provider %q is unavailable: %s", e.Provider, e.Message)
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return s
}

// ResponseError is a non-transient failure of one call that is not a configuration
// problem: the provider rejected the request (HTTP 400, 413, 422: e.g. the prompt is too
// long) or answered with nothing usable (no choices, empty content, a refusal).
type ResponseError struct {
	Provider   string
	StatusCode int
	Message    string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("provider %q: %s", e.Provider, e.Message)
}

// redact removes every occurrence of secret from s. Errors are built from our own
// words, but a provider's error body may echo what it was sent; this is the last guard.
func redact(s, secret string) string {
	if len(secret) < 4 { // too short to be a key; replacing would mangle text
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
