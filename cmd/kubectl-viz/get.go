package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

type getOptions struct {
	output        string // -o: a printer format, "wide", or a directory
	outputDir     string
	allNamespaces bool
	wait          bool
	waitTimeout   time.Duration
	plotly        plotlyOptions
	print         *genericclioptions.PrintFlags
}

func newGetCommand(f *clientFactory) *cobra.Command {
	o := getOptions{print: genericclioptions.NewPrintFlags("").WithTypeSetter(clusterScheme)}
	cmd := &cobra.Command{
		Use:   "get [NAME] [-o json|yaml|name|wide|DIR]",
		Short: "List VisualizationRequests, print one, or download its charts (checking each sha256)",
		Long: `Without -o, print a table of the namespace's requests (or of NAME): phase, chart type,
artifacts, the Ready reason and age; -o wide adds the pool, backend, attempts, the
Verified reason and the model. -o json, yaml, name, jsonpath=... and go-template=...
print the objects as kubectl does.

With --output-dir DIR (or -o DIR, any -o value that is not a format), download NAME's
artifacts, whether the operator kept them in status or in a ConfigMap, check each
against the sha256 in status, and write them to DIR (nothing is written when any does
not match), then print what each chart plots. HTML charts are pointed at a plotly.js
that works without internet (--plotly-js, default local: plotly.min.js is written
beside them from the local plotly installation).

--wait first waits for NAME to finish, following it through a watch.`,
		Example: `  kubectl viz get
  kubectl viz get -A -o wide
  kubectl viz get treatment-effectiveness -o yaml
  kubectl viz get treatment-effectiveness -o out/
  kubectl viz get hemoglobin-trend -n research --wait --output-dir charts/ --plotly-js inline`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeRequestArg(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.plotly.complete(cmd.Flags()); err != nil {
				return err
			}
			return runGet(cmd, f, args, &o)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.output, "output", "o", "", "output format: json, yaml, name, wide, jsonpath=..., go-template=...; any other value is a directory to download NAME's charts into")
	fs.StringVar(&o.outputDir, "output-dir", "", "download NAME's charts into this directory")
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list the requests of every namespace")
	fs.BoolVar(&o.wait, "wait", false, "wait until NAME finishes (following it through a watch) before printing or downloading")
	fs.DurationVar(&o.waitTimeout, "wait-timeout", 5*time.Minute, "how long --wait waits")
	o.plotly.addFlags(fs)
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml", "name", "wide"}, cobra.ShellCompDirectiveFilterDirs))
	_ = cmd.MarkFlagDirname("output-dir")
	_ = cmd.MarkFlagFilename("plotly-js-file", "js")
	return cmd
}

// printerFormat reports whether -o names a printer format (json, jsonpath=..., ...).
func (o *getOptions) printerFormat() bool {
	format, _, _ := strings.Cut(o.output, "=")
	return slices.Contains(o.print.AllowedFormats(), format)
}

func runGet(cmd *cobra.Command, f *clientFactory, args []string, o *getOptions) error {
	dir := o.outputDir
	if dir == "" && o.output != "" && o.output != "wide" && !o.printerFormat() {
		dir = o.output
	}
	if dir != "" && o.outputDir != "" && o.output != "" {
		return usage("give either -o FORMAT or --output-dir DIR with a download, not both")
	}
	if dir != "" && len(args) == 0 {
		return usage("name the request whose charts to write to %s: kubectl viz get NAME --output-dir %s", dir, dir)
	}
	if o.wait && len(args) == 0 {
		return usage("--wait needs a request NAME")
	}
	if o.allNamespaces && len(args) > 0 {
		return usage("-A lists every namespace; it takes no NAME (use -n NAMESPACE)")
	}
	c, err := f.connect()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var obj runtime.Object
	var items []vizv1.VisualizationRequest
	if len(args) == 1 {
		var vr *vizv1.VisualizationRequest
		if o.wait {
			vr, err = waitForRequest(ctx, c, args[0], o.waitTimeout, f.streams.ErrOut)
		} else {
			vr, err = c.getRequest(ctx, args[0])
		}
		if err != nil {
			return err
		}
		if dir != "" {
			return download(ctx, f, c, vr, dir, &o.plotly)
		}
		obj, items = vr, []vizv1.VisualizationRequest{*vr}
	} else {
		list := &vizv1.VisualizationRequestList{}
		var opts []client.ListOption
		if !o.allNamespaces {
			opts = append(opts, client.InNamespace(c.namespace))
		}
		if err := c.List(ctx, list, opts...); err != nil {
			return apiError(err, "visualizationrequests", "", c.namespace)
		}
		for i := range list.Items {
			list.Items[i].SetGroupVersionKind(vizv1.GroupVersion.WithKind(vizv1.KindVisualizationRequest))
		}
		obj, items = list, list.Items
	}

	if o.output == "" || o.output == "wide" {
		if len(items) == 0 {
			where := fmt.Sprintf("in namespace %q", c.namespace)
			if o.allNamespaces {
				where = "in any namespace"
			}
			fmt.Fprintf(f.streams.ErrOut, "No VisualizationRequests %s.\n", where)
			return nil
		}
		p := printers.NewTablePrinter(printers.PrintOptions{Wide: o.output == "wide", WithNamespace: o.allNamespaces})
		return p.PrintObj(requestTable(items), f.streams.Out)
	}
	*o.print.OutputFormat = o.output
	p, err := o.print.ToPrinter()
	if err != nil {
		return usage("%v", err)
	}
	p = &printers.OmitManagedFieldsPrinter{Delegate: p}
	if o.output == "name" { // the name printer takes one object at a time
		for i := range items {
			if err := p.PrintObj(&items[i], f.streams.Out); err != nil {
				return err
			}
		}
		return nil
	}
	return p.PrintObj(obj, f.streams.Out)
}

// download writes vr's artifacts into dir and prints what they plot.
func download(ctx context.Context, f *clientFactory, c *cluster, vr *vizv1.VisualizationRequest, dir string, plotly *plotlyOptions) error {
	if len(vr.Status.Artifacts) == 0 {
		phase := string(vr.Status.Phase)
		if phase == "" {
			phase = string(vizv1.PhasePending)
		}
		if vr.Status.Phase.Finished() {
			return fmt.Errorf("visualizationrequest %q has no artifacts (phase %s); see `kubectl viz logs %s`", vr.Name, phase, vr.Name)
		}
		return fmt.Errorf("visualizationrequest %q has no artifacts yet (phase %s); wait for it with `kubectl viz get %s --wait -o %s`", vr.Name, phase, vr.Name, dir)
	}
	saved, err := saveArtifacts(ctx, c, vr, dir, plotly, f.streams.ErrOut)
	printWritten(f.streams.Out, saved)
	if err != nil {
		return err
	}
	printCharts(f.streams.Out, vr)
	return nil
}

// requestTable is the table of requests; priority-1 columns show with -o wide.
func requestTable(items []vizv1.VisualizationRequest) *metav1.Table {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
		{Name: "Phase", Type: "string"},
		{Name: "Chart", Type: "string"},
		{Name: "Artifacts", Type: "integer"},
		{Name: "Reason", Type: "string"},
		{Name: "Age", Type: "string"},
		{Name: "Pool", Type: "string", Priority: 1},
		{Name: "Backend", Type: "string", Priority: 1},
		{Name: "Attempts", Type: "integer", Priority: 1},
		{Name: "Verified", Type: "string", Priority: 1},
		{Name: "Model", Type: "string", Priority: 1},
	}}
	for i := range items {
		vr := &items[i]
		st := vr.Status
		phase, chart, reason, backend, verified := string(st.Phase), "", "", "", ""
		if phase == "" {
			phase = string(vizv1.PhasePending)
		}
		if st.Detection != nil {
			chart = st.Detection.ChartType
		}
		if c := readyCondition(st.Conditions); c != nil {
			reason = c.Reason
		}
		if c := blockingCondition(vr); c != nil && !st.Phase.Finished() {
			reason = c.Reason
		}
		if st.Execution != nil {
			backend = st.Execution.Backend
		}
		if c := meta.FindStatusCondition(st.Conditions, vizv1.ConditionVerified); c != nil {
			verified = c.Reason
		}
		age := "<unknown>"
		if !vr.CreationTimestamp.IsZero() {
			age = duration.HumanDuration(time.Since(vr.CreationTimestamp.Time))
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []any{vr.Name, phase, orDash(chart), int64(len(st.Artifacts)), orDash(reason), age, orDash(vr.Spec.SandboxPoolRef.Name), orDash(backend), int64(st.Attempts), orDash(verified), orDash(vr.Spec.Model)},
			Object: runtime.RawExtension{Object: vr},
		})
	}
	return t
}

// printCharts prints what each figure plots (status.artifacts[].chart, altText) and
// the Verified condition.
func printCharts(w io.Writer, vr *vizv1.VisualizationRequest) {
	for _, a := range vr.Status.Artifacts {
		if a.Chart == nil {
			continue
		}
		fmt.Fprintf(w, "%s: %s chart", a.Name, a.Chart.Type)
		if a.Chart.Title != "" {
			fmt.Fprintf(w, " %q", a.Chart.Title)
		}
		fmt.Fprintln(w)
		for _, s := range a.Chart.Series {
			name := s.Name
			if name == "" {
				name = "(unnamed)"
			}
			fmt.Fprintf(w, "  %s %s: labels=%v x=%v y=%v", s.Type, name, s.Labels, s.X, s.Y)
			for _, b := range s.Boxes {
				fmt.Fprintf(w, " [%s min %s q1 %s median %s q3 %s max %s]", b.Label, b.Min, b.Q1, b.Median, b.Q3, b.Max)
			}
			if s.Omitted > 0 {
				fmt.Fprintf(w, " (… %d more points)", s.Omitted)
			}
			fmt.Fprintln(w)
		}
		if a.AltText != "" {
			fmt.Fprintf(w, "  alt text: %s\n", a.AltText)
		}
	}
	if c := meta.FindStatusCondition(vr.Status.Conditions, vizv1.ConditionVerified); c != nil {
		fmt.Fprintf(w, "Verified=%s (%s): %s\n", c.Status, c.Reason, c.Message)
	}
}
