// Package requeststatus turns a pipeline result into a VisualizationRequest's status:
// status.detection, status.codeGeneration and the CodeGenerated and Verified
// conditions (reasons and messages), and whether the request failed for good. The
// controller writes what it returns into the request; `kubectl viz render --local`
// prints the same fields, so a chart rendered locally reads as the operator would
// record it.
//
// It takes the API's types on purpose (internal/archtest lists it): capability
// packages (chartdata, codegen, pipeline) keep their own reasons, and this is where
// they are mapped to the API's.
package requeststatus

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/pipeline"
)

// Status field caps (the CRD's maxLength values, in bytes to be safe).
const (
	MaxCodeBytes           = 64 << 10
	MaxFallbackReasonBytes = 1024
	MaxKeywordBytes        = 64
	MaxKeywords            = 10
)

// Condition is a condition the result decides. Warning marks trouble (a Warning
// Event); anything else is progress or an outcome.
type Condition struct {
	Type    string
	Status  metav1.ConditionStatus
	Reason  string
	Message string
	Warning bool
}

// Status is what a pipeline result says about its request.
type Status struct {
	// Detection replaces status.detection when the pipeline changed the detection it
	// was given (a model refined it); nil when the request's detection stands.
	Detection *vizv1.DetectionStatus
	// CodeGeneration is status.codeGeneration; nil when no code was generated.
	CodeGeneration *vizv1.CodeGenerationStatus
	// CodeGenerated is the CodeGenerated condition when code was generated (True,
	// with how it came about); nil otherwise.
	CodeGenerated *Condition
	// Failed is set when no retry can help (an unfaithful chart refused, a model's
	// configuration error): CodeGenerated becomes False with it, and the request fails
	// with its reason and message.
	Failed *Condition
	// NotAVisualization is set when a model judged that the prompt asks for no chart:
	// the request ends Skipped (reason NotAVisualization) with this message.
	NotAVisualization string
	// Verified is the Verified condition, decided by the pipeline when the code ran
	// successfully; nil when nothing was verified.
	Verified *Condition
}

// terminalError is implemented by errors no retry can fix: the request fails with
// Reason().
type terminalError interface {
	error
	Reason() string
}

// Terminal returns err's reason when no retry can fix it.
func Terminal(err error) (reason string, ok bool) {
	var t terminalError
	if errors.As(err, &t) {
		return t.Reason(), true
	}
	return "", false
}

// Of maps a pipeline result, and the error Run returned with it, to the request's
// status. Errors that are not terminal (the sandbox failed, the context ended) leave
// Failed nil: retrying is the caller's business.
func Of(res pipeline.Result, err error) Status {
	var st Status
	out := res.Outcome
	if res.Refined {
		st.Detection = Detection(res.Detection)
	}
	if out.Code.Code != "" {
		st.CodeGeneration = &vizv1.CodeGenerationStatus{
			Source:         vizv1.CodeGenerationSource(out.Code.Source),
			Path:           string(out.Path),
			Template:       out.Code.Template,
			Model:          out.Code.Model,
			Attempts:       int32(out.Attempts),
			FallbackReason: Truncate(out.FallbackReason, MaxFallbackReasonBytes),
			Code:           Truncate(out.Code.Code, MaxCodeBytes),
			DataSource:     vizv1.ChartDataSource(out.Code.DataSource),
		}
		st.CodeGenerated = &Condition{Type: vizv1.ConditionCodeGenerated, Status: metav1.ConditionTrue,
			Reason: string(out.Path), Message: codegenMessage(out)}
	}
	if reason, ok := Terminal(err); ok {
		st.Failed = &Condition{Type: vizv1.ConditionCodeGenerated, Status: metav1.ConditionFalse,
			Reason: reason, Message: err.Error(), Warning: true}
	}
	if err == nil && res.Refined && !res.Detection.Visualization {
		st.NotAVisualization = fmt.Sprintf("the model judged that the prompt does not ask for a chart; route it to the %s tool", res.Detection.Tool)
	}
	if err == nil && res.Verdict.Reason != "" && out.Result != nil && out.Result.Success {
		st.Verified = verified(res.Verdict)
	}
	return st
}

// verified is the Verified condition for the pipeline's verdict, as decided: True when
// the chart shows what the request asked for, False with the difference, Unknown when
// it cannot be checked. It never fails the request.
func verified(v chartdata.Verdict) *Condition {
	status := metav1.ConditionUnknown
	switch {
	case v.Verified:
		status = metav1.ConditionTrue
	case pipeline.ReasonMismatch(v) != "":
		status = metav1.ConditionFalse
	}
	return &Condition{Type: vizv1.ConditionVerified, Status: status, Reason: VerifiedReason(v.Reason),
		Message: v.Message, Warning: status == metav1.ConditionFalse}
}

// verifiedReasons maps a verdict's reason (chartdata's own) to the Verified
// condition's.
var verifiedReasons = map[chartdata.Reason]string{
	chartdata.ReasonChartVerified:     vizv1.ReasonChartVerified,
	chartdata.ReasonChartTypeMismatch: vizv1.ReasonChartTypeMismatch,
	chartdata.ReasonDataMismatch:      vizv1.ReasonDataMismatch,
	chartdata.ReasonSeriesMismatch:    vizv1.ReasonSeriesMismatch,
	chartdata.ReasonNotVerifiable:     vizv1.ReasonNotVerifiable,
	chartdata.ReasonDataNotAccounted:  vizv1.ReasonDataNotAccounted,
}

// VerifiedReason is the Verified condition's reason for a verdict's reason.
func VerifiedReason(r chartdata.Reason) string {
	if reason, ok := verifiedReasons[r]; ok {
		return reason
	}
	return string(r) // not reached: TestVerifiedReason checks every chartdata.Reason is mapped
}

// Detection is status.detection for a detection: the keywords bounded for status.
func Detection(d detect.Result) *vizv1.DetectionStatus {
	kw := d.Keywords
	if len(kw) > MaxKeywords {
		kw = kw[:MaxKeywords]
	}
	out := &vizv1.DetectionStatus{
		Visualization: d.Visualization,
		Tool:          string(d.Tool),
		ChartType:     string(d.ChartType),
		Source:        string(d.Source),
	}
	for _, k := range kw {
		out.Keywords = append(out.Keywords, Truncate(k, MaxKeywordBytes))
	}
	return out
}

func codegenMessage(out codegen.Outcome) string {
	switch out.Path {
	case codegen.PathUser:
		return "running the code given in spec.code"
	case codegen.PathTemplate:
		return fmt.Sprintf("generated from the built-in %q template", out.Code.Template)
	case codegen.PathModel:
		return fmt.Sprintf("generated by %s", out.Code.Model)
	case codegen.PathRepaired:
		return fmt.Sprintf("generated by %s and repaired after an error (%d model calls)", out.Code.Model, out.Attempts)
	case codegen.PathTemplateFallback:
		return fmt.Sprintf("the model's code was not usable (%s); used the built-in %q template", out.FallbackReason, out.Code.Template)
	}
	return string(out.Path)
}

// Truncate cuts s to at most n bytes with a visible marker, never inside a UTF-8
// sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	marker := fmt.Sprintf("\n… [truncated: %d bytes omitted]", len(s)-n)
	cut := n - len(marker)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
