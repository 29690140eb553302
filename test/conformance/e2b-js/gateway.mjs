// Drives vizops's E2B-compatible gateway with E2B's official JS client, unmodified, in
// its normal mode: E2B_API_URL, E2B_DOMAIN and E2B_API_KEY come from the environment
// (test/conformance/gateway_test.go sets them), sandboxes are created through the
// gateway's API and code runs at https://49999-<sandboxID>.<E2B_DOMAIN>. Each check
// prints one line; "sandbox <id>" names the sandbox for the Go test; the exit status
// is the number of failed checks.
import { Sandbox } from '@e2b/code-interpreter'

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

let sbx
await check('Sandbox.create() through the gateway', async () => {
  sbx = await Sandbox.create({ metadata: { app: 'conformance' }, timeoutMs: 600_000 })
  assert(sbx.sandboxId, 'no sandbox ID')
  console.log(`sandbox ${sbx.sandboxId}`)
})
if (!sbx) process.exit(1)

await check('runCode draws a matplotlib chart: a PNG comes back', async () => {
  const ex = await sbx.runCode(
    'import matplotlib.pyplot as plt\nplt.bar(["a", "b"], [3, 5])\nplt.title("through the gateway")\nplt.show()'
  )
  assert(!ex.error, `unexpected error: ${show(ex)}`)
  const png = ex.results.find((r) => r.png)
  assert(png, `no PNG result: ${show(ex)}`)
  assert(png.png.startsWith(PNG_MAGIC), 'the png is not a base64 PNG')
})

await check('notebook state persists: x = 41, then x + 1 is 42', async () => {
  const first = await sbx.runCode('x = 41')
  assert(!first.error, `x = 41: ${show(first)}`)
  const ex = await sbx.runCode('x + 1')
  assert(ex.text === '42', `text = ${JSON.stringify(ex.text)}: ${show(ex)}`)
})

await check('stdout streams through the gateway', async () => {
  const lines = []
  const ex = await sbx.runCode('for i in range(3):\n    print(i)', { onStdout: (m) => lines.push(m.line) })
  assert(lines.join('') === '0\n1\n2\n', `onStdout got ${JSON.stringify(lines)}`)
  assert(!ex.error, show(ex))
})

await check('a code context of its own: createCodeContext, then runCode in it', async () => {
  const ctx = await sbx.createCodeContext()
  const a = await sbx.runCode('y = 7', { context: ctx })
  assert(!a.error, show(a))
  const b = await sbx.runCode('y * 6', { context: ctx })
  assert(b.text === '42', `text = ${JSON.stringify(b.text)}: ${show(b)}`)
  const other = await sbx.runCode('"y" in globals()')
  assert(other.text === 'False', `the default context sees y: ${show(other)}`)
})

await check('Sandbox.getInfo and Sandbox.list see it with its metadata', async () => {
  const info = await Sandbox.getInfo(sbx.sandboxId)
  assert(info.sandboxId === sbx.sandboxId, `getInfo: ${JSON.stringify(info)}`)
  assert(info.metadata.app === 'conformance', `metadata: ${JSON.stringify(info.metadata)}`)
  const page = await Sandbox.list({ query: { metadata: { app: 'conformance' } } }).nextItems()
  assert(page.some((s) => s.sandboxId === sbx.sandboxId), `list: ${JSON.stringify(page)}`)
})

await check('a wrong API key is refused (401)', async () => {
  let err
  try {
    await Sandbox.create({ apiKey: 'e2b_not-a-key-of-this-gateway' })
  } catch (e) {
    err = e
  }
  assert(err, 'Sandbox.create with a wrong key succeeded')
  assert(err.name === 'AuthenticationError' || String(err.message).includes('401'), `error: ${err.name}: ${err.message}`)
})

await check('Sandbox.connect by ID reaches the same notebook', async () => {
  const again = await Sandbox.connect(sbx.sandboxId)
  const ex = await again.runCode('x * 2')
  assert(ex.text === '82', `text = ${JSON.stringify(ex.text)}: ${show(ex)}`)
})

await check('the sandbox refuses a request without its access token (401)', async () => {
  const url = `https://49999-${sbx.sandboxId}.${process.env.E2B_DOMAIN}/execute`
  const res = await fetch(url, { method: 'POST', body: JSON.stringify({ code: '1' }), headers: { 'Content-Type': 'application/json' } })
  assert(res.status === 401, `status ${res.status} without a token`)
})

await check('kill ends the sandbox', async () => {
  await sbx.kill()
  let err
  try {
    await Sandbox.getInfo(sbx.sandboxId)
  } catch (e) {
    err = e
  }
  assert(err && err.name === 'SandboxNotFoundError', `getInfo after kill: ${err ? err.name + ': ' + err.message : 'succeeded'}`)
})

process.exit(failed)
