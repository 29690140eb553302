package models

import (
	"context"
	"errors"
	"strings"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// anthropicCall builds the Messages API call (Claude).
func (c *client) anthropicCall() func(ctx context.Context, req Request) (string, error) {
	opts := []option.RequestOption{
		// Keys come only from the SecretReader (or apiKeyEnv in --local), never from
		// ANTHROPIC_API_KEY or other ambient credentials.
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(c.baseURLForMessages()),
		option.WithHTTPClient(c.http),
		option.WithMaxRetries(0),
	}
	if c.key != "" {
		// x-api-key is the header Anthropic documents (and Anthropic-compatible proxies
		// expect); the SDK's WithAPIKey would send it as a bearer token.
		opts = append(opts, option.WithHeader("x-api-key", c.key))
	}
	sdk := anthropic.NewClient(opts...)
	return func(ctx context.Context, req Request) (string, error) {
		params := anthropic.MessageNewParams{
			Model:     c.model,
			MaxTokens: int64(req.MaxTokens),
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(req.User))},
		}
		if req.System != "" {
			params.System = []anthropic.TextBlockParam{{Text: req.System}}
		}
		msg, err := sdk.Messages.New(ctx, params)
		if err != nil {
			var apiErr *anthropic.Error
			if errors.As(err, &apiErr) {
				if apiErr.Response != nil {
					return "", c.httpError(apiErr.StatusCode, apiErr.Response.Header, apiErr.Message)
				}
				return "", c.httpError(apiErr.StatusCode, nil, apiErr.Message)
			}
			return "", err
		}
		var b strings.Builder
		for _, block := range msg.Content {
			if block.Type == "text" {
				b.WriteString(block.Text)
			}
		}
		if strings.TrimSpace(b.String()) == "" {
			return "", &attemptError{kind: kindResponse, msg: "the answer had no text (stop_reason " + string(msg.StopReason) + ")"}
		}
		if msg.StopReason == "refusal" {
			return "", &attemptError{kind: kindResponse, msg: "the model refused: " + truncate(b.String(), 200)}
		}
		return b.String(), nil
	}
}
