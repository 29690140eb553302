package codegen

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExtract(t *testing.T) {
	tests := map[string]struct {
		answer  string
		want    string
		wantErr error
	}{
		"clean fenced": {
			answer: "```python\nimport matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.show()\n```",
			want:   "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.show()",
		},
		"prose around the block": {
			answer: "Sure! Here is a bar chart of the data:\n\n```python\nimport matplotlib.pyplot as plt\nplt.bar(['a'], [1])\nplt.show()\n```\n\nThis code draws one bar. Let me know if you want changes.",
			want:   "import matplotlib.pyplot as plt\nplt.bar(['a'], [1])\nplt.show()",
		},
		"several blocks: the largest python one": {
			answer: "First install:\n```bash\npip install matplotlib\n```\nA quick check:\n```python\nprint(1)\n```\nThe chart:\n```python\nimport matplotlib.pyplot as plt\nx = [1, 2, 3]\nplt.plot(x)\nplt.show()\n```\nOutput:\n```\n<Figure>\n```",
			want:   "import matplotlib.pyplot as plt\nx = [1, 2, 3]\nplt.plot(x)\nplt.show()",
		},
		"untagged block": {
			answer: "```\nimport numpy as np\nimport matplotlib.pyplot as plt\nplt.hist(np.random.randn(100))\nplt.show()\n```",
			want:   "import numpy as np\nimport matplotlib.pyplot as plt\nplt.hist(np.random.randn(100))\nplt.show()",
		},
		"no fences, prose before and after": {
			answer: "Here is the code:\nimport matplotlib.pyplot as plt\nfor i in range(3):\n    plt.plot([i, i + 1])\nplt.show()\nThis plots three lines.",
			want:   "import matplotlib.pyplot as plt\nfor i in range(3):\n    plt.plot([i, i + 1])\nplt.show()",
		},
		"missing imports are added": {
			answer: "```py\ndata = pd.DataFrame({'x': np.arange(3)})\nplt.plot(data['x'])\nplt.show()\n```",
			want:   "import matplotlib.pyplot as plt\nimport numpy as np\nimport pandas as pd\ndata = pd.DataFrame({'x': np.arange(3)})\nplt.plot(data['x'])\nplt.show()",
		},
		"from-import of pyplot counts": {
			answer: "```python\nfrom matplotlib import pyplot as plt\nplt.show()\n```",
			want:   "from matplotlib import pyplot as plt\nplt.show()",
		},
		"unterminated fence (truncated answer)": {
			answer: "```python\nimport matplotlib.pyplot as plt\nplt.pie([1, 2])\n",
			want:   "import matplotlib.pyplot as plt\nplt.pie([1, 2])",
		},
		"tilde fence and CRLF": {
			answer: "~~~python\r\nimport matplotlib.pyplot as plt\r\nplt.show()\r\n~~~\r\n",
			want:   "import matplotlib.pyplot as plt\nplt.show()",
		},
		"indented block in a list item": {
			answer: "1. Run this:\n\n    ```python\n    import matplotlib.pyplot as plt\n    plt.show()\n    ```\n",
			want:   "import matplotlib.pyplot as plt\nplt.show()",
		},
		"notebook lines dropped": {
			answer: "```python\n%matplotlib inline\n!pip install seaborn\nimport matplotlib.pyplot as plt\nplt.show()\n```",
			want:   "import matplotlib.pyplot as plt\nplt.show()",
		},
		"no code":            {answer: "I'm sorry, I can't help with that request.", wantErr: ErrNoCode},
		"empty":              {answer: "   ", wantErr: ErrNoCode},
		"only a prose block": {answer: "```\nThe chart would show sales rising.\n```", wantErr: ErrNoCode},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Extract(tc.answer)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("code (-want +got):\n%s", d)
			}
		})
	}
}
