// Baseline: real @flatfile/listener dispatch throughput (events/s) with H callbacks on glob
// topics with glob job values (bench/dispatch.py's glob mix), each event matching exactly one.
// Usage: node bench-globs.cjs
const { FlatfileListener } = require('@flatfile/listener')
const JOBS = [k => `app${k}:export`, k => `sheet:op${k}`, k => `workbook:op${k}-fast`, k => `file:op${k}s`]
let calls = 0
const cb = async () => { calls++ }
function build(H) {
  const L = new FlatfileListener()
  for (let k = 0; k < H; k++) {
    const shape = k % 4
    if (shape === 0) L.on('job:*', { job: `app${k}:*` }, cb)
    else if (shape === 1) L.on('*:ready', { job: `*:op${k}` }, cb)
    else if (shape === 2) L.on('job:**', { job: `workbook:op${k}-*`, 'context.sheetId': 'us_sh_*' }, cb)
    else L.on(['records:*', 'job:*'], { job: `file:op${k}?` }, cb)
  }
  return L
}
function ev(i, H) {
  const k = (i * 7919) % H, job = JOBS[k % 4](k), [domain, operation] = job.split(':')
  return { id: 'us_evt_' + i, topic: 'job:ready', domain: 'job',
    context: { accountId: 'us_acc_1', environmentId: 'us_env_1', spaceId: 'us_sp_1', workbookId: 'us_wb_1', sheetId: 'us_sh_1', jobId: 'us_jb_' + i },
    payload: { job, domain, operation, status: 'ready', isPart: false, input: {} },
    namespaces: ['workbook'], createdAt: '2026-11-01T00:00:00.000Z' }
}
;(async () => {
  console.log('node', process.version)
  for (const H of [1, 10, 100, 1000, 10000]) {
    const L = build(H)
    const E = Math.max(10, Math.min(20000, Math.floor(100000 / H)))
    const events = Array.from({ length: E }, (_, i) => ev(i, H))
    const rates = []
    calls = 0
    for (let r = 0; r < 6; r++) {
      const t0 = process.hrtime.bigint()
      for (const e of events) await L.dispatchEvent(e)
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      if (r > 0) rates.push(E / s)
    }
    rates.sort((a, b) => a - b)
    console.log(`H=${H}\tevents/s median=${Math.round(rates[2])}\t(min ${Math.round(rates[0])}, max ${Math.round(rates[4])})\tcalls/event=${(calls / (6 * E)).toFixed(2)}`)
  }
})()
