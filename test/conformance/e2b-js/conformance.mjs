// Drives vizops's sandbox-agent with E2B's official JS client, unmodified, in debug
// mode: Sandbox.create({ debug: true }) makes no API call and talks to
// http://localhost:49999 (the code-interpreter port). Each check prints one line;
// the exit status is the number of failed checks.
//
// The agent requires X-Access-Token. In the cloud the SDK gets that token
// (envdAccessToken) from E2B's API when it creates the sandbox; debug mode skips the
// API, so this script sets it from VIZOPS_AGENT_TOKEN as the API would have. runCode
// then sends it, as it does to a cloud sandbox.
import { Sandbox } from '@e2b/code-interpreter'

const token = process.env.VIZOPS_AGENT_TOKEN
const PNG_MAGIC = 'iVBORw0KGgo' // base64 of the PNG signature

let failed = 0
async function check(name, fn) {
  try {
    await fn()
    console.log(`ok   ${name}`)
  } catch (err) {
    failed++
    console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`)
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg)
}
function show(execution) {
  return JSON.stringify({
    results: execution.results.map((r) => ({ formats: r.formats(), isMainResult: r.isMainResult, text: r.text })),
    logs: execution.logs,
    error: execution.error,
  })
}

const sbx = await Sandbox.create({ debug: true })
if (token) sbx.envdAccessToken = token

await check('matplotlib plt.show() returns a PNG in results', async () => {
  const ex = await sbx.runCode(
    'import matplotlib.pyplot as plt\nplt.bar(["a", "b"], [3, 5])\nplt.title("conformance")\nplt.show()'
  )
  assert(!ex.error, `unexpected error: ${show(ex)}`)
  const png = ex.results.find((r) => r.png)
  assert(png, `no PNG result: ${show(ex)}`)
  assert(png.png.startsWith(PNG_MAGIC), 'the png is not a base64 PNG')
  assert(png.isMainResult === false, 'a shown figure is a display, not the main result')
})

await check('stdout and stderr land in logs', async () => {
  const ex = await sbx.runCode('import sys\nprint("hello out")\nprint("hello err", file=sys.stderr)')
  assert(!ex.error, `unexpected error: ${show(ex)}`)
  assert(ex.logs.stdout.join('') === 'hello out\n', `stdout: ${JSON.stringify(ex.logs.stdout)}`)
  assert(ex.logs.stderr.join('') === 'hello err\n', `stderr: ${JSON.stringify(ex.logs.stderr)}`)
})

await check('1/0 gives error.name ZeroDivisionError', async () => {
  const ex = await sbx.runCode('1/0')
  assert(ex.error, `no error: ${show(ex)}`)
  assert(ex.error.name === 'ZeroDivisionError', `error.name = ${ex.error.name}`)
  assert(ex.error.value === 'division by zero', `error.value = ${ex.error.value}`)
  assert(ex.error.traceback.includes('ZeroDivisionError'), `traceback: ${ex.error.traceback}`)
})

await check('x = 41 then x + 1 in the same sandbox gives the text 42', async () => {
  const first = await sbx.runCode('x = 41')
  assert(!first.error && first.text === undefined, `x = 41: ${show(first)}`)
  const ex = await sbx.runCode('x + 1')
  assert(ex.text === '42', `text = ${JSON.stringify(ex.text)}: ${show(ex)}`)
})

await check('plotly fig.show() gives HTML', async () => {
  const ex = await sbx.runCode(
    'import plotly.express as px\nfig = px.bar(x=["a", "b"], y=[1, 3], title="conformance")\nfig.show()'
  )
  assert(!ex.error, `unexpected error: ${show(ex)}`)
  const html = ex.results.find((r) => r.html)
  assert(html, `no HTML result: ${show(ex)}`)
  assert(html.html.includes('plotly'), 'the HTML does not load plotly')
  assert(html.raw.extra && html.raw.extra['application/vnd.plotly.v1+json'], 'no plotly JSON in extra')
})

await check('a figure shown before an exception still comes back', async () => {
  const ex = await sbx.runCode(
    'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nraise ValueError("after the figure")'
  )
  assert(ex.error && ex.error.name === 'ValueError', `error: ${show(ex)}`)
  assert(ex.results.some((r) => r.png && r.png.startsWith(PNG_MAGIC)), `no PNG: ${show(ex)}`)
})

await check('callbacks stream stdout before the execution ends', async () => {
  const lines = []
  const ex = await sbx.runCode('for i in range(3):\n    print(i)', { onStdout: (m) => lines.push(m.line) })
  assert(lines.join('') === '0\n1\n2\n', `onStdout got ${JSON.stringify(lines)}`)
  assert(ex.logs.stdout.join('') === '0\n1\n2\n', `logs: ${JSON.stringify(ex.logs.stdout)}`)
})

if (token) {
  await check('without the access token the agent refuses (401)', async () => {
    const anon = await Sandbox.create({ debug: true })
    let err
    try {
      await anon.runCode('1')
    } catch (e) {
      err = e
    }
    assert(err, 'runCode without a token succeeded')
    assert(String(err.message).includes('401'), `error: ${err.message}`)
  })
}

process.exit(failed)
