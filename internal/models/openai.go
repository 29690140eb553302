package models

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// openAICall builds the chat-completions call for OpenAI-compatible servers.
func (c *client) openAICall() func(ctx context.Context, req Request) (string, error) {
	opts := []option.RequestOption{
		option.WithBaseURL(c.baseURLForMessages()),
		option.WithHTTPClient(c.http),
		option.WithMaxRetries(0),
		// Always set (even empty) so an OPENAI_API_KEY in the process environment is
		// never sent to a keyless server such as Ollama.
		option.WithAPIKey(c.key),
		option.WithHeaderDel("OpenAI-Organization"),
		option.WithHeaderDel("OpenAI-Project"),
	}
	if c.key == "" {
		opts = append(opts, option.WithHeaderDel("Authorization"))
	}
	sdk := openai.NewClient(opts...)
	// OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens);
	// compatible servers (Ollama, vLLM, llama.cpp) all read max_tokens.
	official := false
	if u, err := url.Parse(c.baseURLForMessages()); err == nil && strings.HasSuffix(u.Hostname(), "api.openai.com") {
		official = true
	}
	return func(ctx context.Context, req Request) (string, error) {
		params := openai.ChatCompletionNewParams{
			Model: c.model,
		}
		if req.System != "" {
			params.Messages = append(params.Messages, openai.SystemMessage(req.System))
		}
		params.Messages = append(params.Messages, openai.UserMessage(req.User))
		if official {
			params.MaxCompletionTokens = openai.Int(int64(req.MaxTokens))
		} else {
			params.MaxTokens = openai.Int(int64(req.MaxTokens))
		}
		if req.JSON {
			rf := shared.NewResponseFormatJSONObjectParam()
			params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &rf}
		}
		resp, err := sdk.Chat.Completions.New(ctx, params)
		if err != nil {
			var apiErr *openai.Error
			if errors.As(err, &apiErr) {
				var h = apiErr.Response
				if h != nil {
					return "", c.httpError(apiErr.StatusCode, h.Header, apiErr.Message)
				}
				return "", c.httpError(apiErr.StatusCode, nil, apiErr.Message)
			}
			return "", err
		}
		if len(resp.Choices) == 0 {
			return "", &attemptError{kind: kindResponse, msg: "the answer had no choices"}
		}
		msg := resp.Choices[0].Message
		if msg.Refusal != "" && msg.Content == "" {
			return "", &attemptError{kind: kindResponse, msg: "the model refused: " + truncate(msg.Refusal, 200)}
		}
		if strings.TrimSpace(msg.Content) == "" {
			reason := resp.Choices[0].FinishReason
			return "", &attemptError{kind: kindResponse, msg: "the answer was empty (finish_reason " + reason + ")"}
		}
		return msg.Content, nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
