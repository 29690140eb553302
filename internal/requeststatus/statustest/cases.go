// Package statustest is one table of pipeline results and the status each must
// become. The mapping's own test, the controller's and `kubectl viz render`'s run the
// same table, so the operator and the CLI cannot drift apart.
package statustest

import (
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
	"github.com/vizops/viz-operator/internal/chartdata"
	"github.com/vizops/viz-operator/internal/codegen"
	"github.com/vizops/viz-operator/internal/detect"
	"github.com/vizops/viz-operator/internal/pipeline"
	"github.com/vizops/viz-operator/internal/sandbox"
)

// Cond is a condition as status shows it.
type Cond struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

// Want is the status a result must become.
type Want struct {
	// Detection is status.detection after the result (nil: the intake's stands).
	Detection      *vizv1.DetectionStatus
	CodeGeneration *vizv1.CodeGenerationStatus
	// CodeGenerated is the condition as the result leaves it (False for a terminal
	// failure; nil when no code was generated and nothing failed).
	CodeGenerated *Cond
	// Terminal says the request fails for good with CodeGenerated's reason and message.
	Terminal bool
	// Verified is the Verified condition (nil: none).
	Verified *Cond
	// Skipped is the message of a request a model judged not to be a chart.
	Skipped string
}

// Case is a pipeline result, the error Run returned with it, and the status it must
// become.
type Case struct {
	Result pipeline.Result
	Err    error
	Want   Want
}

var keywords = detect.Result{Visualization: true, Tool: detect.ToolCodeInterpreter, ChartType: detect.ChartBar,
	Keywords: []string{"bar chart"}, Source: detect.SourceKeywords}

func ran(success bool) *sandbox.Result {
	r := &sandbox.Result{Success: success, SandboxID: "sb-1", ExecutionTime: 120 * time.Millisecond,
		Files: []sandbox.Artifact{{Name: "figure_1.png", MIMEType: "image/png", Data: []byte("png")}}}
	if !success {
		r.Error = &sandbox.ExecError{Name: "NameError", Value: "name 'valuez' is not defined"}
	}
	return r
}

const templateCode = "import matplotlib.pyplot as plt\nplt.bar(['A', 'B'], [3, 5])\nplt.show()\n"

// Cases are the results: success, a partial one (the model failed, the template
// drew), a chart that differs, one that cannot be checked, a failed execution, a
// model's "not a chart", an unfaithful chart refused, a sandbox failure, user code.
func Cases() map[string]Case {
	template := codegen.Outcome{Code: codegen.Code{Code: templateCode, Source: codegen.SourceTemplate, Template: "bar", DataSource: codegen.DataPrompt},
		Path: codegen.PathTemplate, Result: ran(true)}
	templateStatus := &vizv1.CodeGenerationStatus{Source: vizv1.CodeGenerationSource(codegen.SourceTemplate), Path: "Template", Template: "bar",
		Code: templateCode, DataSource: vizv1.DataSourcePrompt}
	templateCond := &Cond{metav1.ConditionTrue, "Template", `generated from the built-in "bar" template`}
	fallback := template
	fallback.Path, fallback.Attempts, fallback.FallbackReason = codegen.PathTemplateFallback, 1, "the model is unavailable: server error (HTTP 503)"
	fallbackStatus := *templateStatus
	fallbackStatus.Path, fallbackStatus.Attempts, fallbackStatus.FallbackReason = "TemplateFallback", 1, fallback.FallbackReason
	failedRun := template
	failedRun.Result = ran(false)
	refined := keywords
	refined.Source, refined.Title = detect.SourceModel, "Visits"
	repaired := codegen.Outcome{Code: codegen.Code{Code: templateCode, Source: codegen.SourceModel, Model: "test/coder:7b", DataSource: codegen.DataModel},
		Path: codegen.PathRepaired, Attempts: 2, Repairs: 1, Result: ran(true)}
	notAChart := detect.Result{Tool: detect.ToolPubMedSearch, ChartType: detect.ChartAuto, Source: detect.SourceModel}
	user := codegen.Outcome{Code: codegen.Code{Code: templateCode, Source: codegen.SourceUser}, Path: codegen.PathUser, Result: ran(true)}

	return map[string]Case{
		"template, verified": {
			Result: pipeline.Result{Detection: keywords, Outcome: template, DataSource: codegen.DataPrompt,
				Verdict: chartdata.Verdict{Verified: true, Reason: chartdata.ReasonChartVerified, Message: "the bar chart shows the request's 2 values"}},
			Want: Want{CodeGeneration: templateStatus, CodeGenerated: templateCond,
				Verified: &Cond{metav1.ConditionTrue, vizv1.ReasonChartVerified, "the bar chart shows the request's 2 values"}},
		},
		"partial: the model failed, the template drew; not verifiable": {
			Result: pipeline.Result{Detection: keywords, Outcome: fallback, DataSource: codegen.DataPrompt,
				Verdict: chartdata.Verdict{Reason: chartdata.ReasonNotVerifiable, Message: "no chart data was read back"}},
			Want: Want{CodeGeneration: &fallbackStatus,
				CodeGenerated: &Cond{metav1.ConditionTrue, "TemplateFallback", `the model's code was not usable (the model is unavailable: server error (HTTP 503)); used the built-in "bar" template`},
				Verified:      &Cond{metav1.ConditionUnknown, vizv1.ReasonNotVerifiable, "no chart data was read back"}},
		},
		"refined and repaired, chart differs": {
			Result: pipeline.Result{Detection: refined, Refined: true, Outcome: repaired, DataSource: codegen.DataModel,
				Verdict: chartdata.Verdict{Reason: chartdata.ReasonDataMismatch, Message: "series 1: missing: 5"}},
			Want: Want{
				Detection: &vizv1.DetectionStatus{Visualization: true, Tool: "CodeInterpreter", ChartType: "bar", Keywords: []string{"bar chart"}, Source: "Model"},
				CodeGeneration: &vizv1.CodeGenerationStatus{Source: vizv1.CodeGenerationSource(codegen.SourceModel), Path: "Repaired", Model: "test/coder:7b",
					Attempts: 2, Code: templateCode, DataSource: vizv1.DataSourceModel},
				CodeGenerated: &Cond{metav1.ConditionTrue, "Repaired", "generated by test/coder:7b and repaired after an error (2 model calls)"},
				Verified:      &Cond{metav1.ConditionFalse, vizv1.ReasonDataMismatch, "series 1: missing: 5"}},
		},
		"failed execution": {
			Result: pipeline.Result{Detection: keywords, Outcome: failedRun, DataSource: codegen.DataPrompt},
			Want:   Want{CodeGeneration: templateStatus, CodeGenerated: templateCond},
		},
		"a model judged it not a chart": {
			Result: pipeline.Result{Detection: notAChart, Refined: true},
			Want: Want{Detection: &vizv1.DetectionStatus{Tool: "PubMedSearch", ChartType: "auto", Source: "Model"},
				Skipped: "the model judged that the prompt does not ask for a chart; route it to the PubMedSearch tool"},
		},
		"unfaithful chart refused": {
			Result: pipeline.Result{Detection: keywords},
			Err:    &codegen.UnfaithfulError{Why: codegen.ReasonDataNotUnderstood, Message: "the templates could not read the request's data: the request gives 520"},
			Want: Want{Terminal: true,
				CodeGenerated: &Cond{metav1.ConditionFalse, vizv1.ReasonDataNotUnderstood, "the templates could not read the request's data: the request gives 520"}},
		},
		"sandbox failed (retried)": {
			Result: pipeline.Result{Detection: keywords, Outcome: codegen.Outcome{Code: template.Code, Path: codegen.PathTemplate}},
			Err:    errors.New("the sandbox is unavailable"),
			Want:   Want{CodeGeneration: templateStatus, CodeGenerated: templateCond},
		},
		"user code, verified": {
			Result: pipeline.Result{Detection: keywords, Outcome: user,
				Verdict: chartdata.Verdict{Verified: true, Reason: chartdata.ReasonChartVerified, Message: "the bar chart shows the request's 2 values"}},
			Want: Want{
				CodeGeneration: &vizv1.CodeGenerationStatus{Source: vizv1.CodeGenerationSource(codegen.SourceUser), Path: "User", Code: templateCode},
				CodeGenerated:  &Cond{metav1.ConditionTrue, "User", "running the code given in spec.code"},
				Verified:       &Cond{metav1.ConditionTrue, vizv1.ReasonChartVerified, "the bar chart shows the request's 2 values"}},
		},
	}
}
