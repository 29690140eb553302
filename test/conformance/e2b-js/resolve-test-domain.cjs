// Preloaded (node --require) by the gateway conformance test: names under
// VIZOPS_TEST_DOMAIN (the gateway's sandbox domain, api.<domain> included) resolve to
// 127.0.0.1, where the test's gateway listens, as a wildcard DNS record would point
// them at a cluster's ingress. Nothing else changes: the SDK is not modified, and TLS
// is verified against the test's CA (NODE_EXTRA_CA_CERTS).
'use strict'
const dns = require('node:dns')

const domain = (process.env.VIZOPS_TEST_DOMAIN || '').toLowerCase()
const original = dns.lookup

function ours(hostname) {
  const h = String(hostname).toLowerCase()
  return domain !== '' && (h === domain || h.endsWith('.' + domain))
}

dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === 'function') {
    callback = options
    options = {}
  }
  if (!ours(hostname)) return original.call(dns, hostname, options, callback)
  const opts = typeof options === 'number' ? { family: options } : options || {}
  if (opts.all) {
    process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }])
  } else {
    process.nextTick(callback, null, '127.0.0.1', 4)
  }
}
