// evm.mjs compiles MileageMining.sol with solc (bundled compiler, nothing is
// downloaded) and runs it in an @ethereumjs/vm. The Go tests drive it:
//
//   node evm.mjs < input.json > output.json
//
// input:  {"ctor":"0x<abi-encoded constructor args>",
//          "calls":[{"from":"0x<address>","data":"0x<calldata>"}, ...],
//          "block":N}
//         the contract is deployed by OWNER (below), who owns it. block
//         (optional) is the number of the block every call runs in; the
//         hash of an earlier block n (BLOCKHASH, the last 256) is
//         sha256(uint256 n): a stand-in chain, the opcode is the EVM's.
// output: {"owner":"0x..","address":"0x..","deployGas":N,
//          "results":[{"ok":bool,"gas":N,"exec":N,"ret":"0x.."}, ...]}
//
// gas is the transaction's gas: 21000 + calldata (16 per non-zero byte, 4 per
// zero byte) + execution; exec is the execution alone. ret is the return
// data, or the revert data when ok is false. Calls run in order, in one VM,
// each as its own transaction (state changes of a reverted call are undone).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = path.dirname(fileURLToPath(import.meta.url))
const modules = process.env.CONTRACT_NODE_MODULES
if (!modules) throw new Error('CONTRACT_NODE_MODULES is not set (the npm ci directory node_modules)')
const require = createRequire(path.join(modules, 'noop.js'))
const { createVM } = await import(require.resolve('@ethereumjs/vm'))
const { Common, Mainnet, Hardfork } = await import(require.resolve('@ethereumjs/common'))
const { createAddressFromString, createZeroAddress, hexToBytes, bytesToHex } = await import(require.resolve('@ethereumjs/util'))

const OWNER = '0x00000000000000000000000000000000000a11ce'

// compile returns the contract's creation bytecode, cached in
// <modules>/../bytecode-<sha256 of source and solc version>.hex.
function compile() {
  const source = fs.readFileSync(path.join(here, 'MileageMining.sol'), 'utf8')
  // solc (an 8 MB compiler) is loaded only when the bytecode is not cached.
  const solcVersion = JSON.parse(fs.readFileSync(path.join(modules, 'solc', 'package.json'), 'utf8')).version
  const key = crypto.createHash('sha256').update(solcVersion + '\nprague\n' + source).digest('hex').slice(0, 16)
  const cached = path.join(modules, '..', `bytecode-${key}.hex`)
  if (fs.existsSync(cached)) return fs.readFileSync(cached, 'utf8')
  const bytecode = solcCompile(source)
  for (const f of fs.readdirSync(path.join(modules, '..'))) {
    if (/^bytecode-[0-9a-f]{16}\.hex$/.test(f)) fs.rmSync(path.join(modules, '..', f), { force: true }) // an older source's
  }
  const tmp = `${cached}.${process.pid}.tmp`
  fs.writeFileSync(tmp, bytecode)
  fs.renameSync(tmp, cached)
  return bytecode
}

function solcCompile(source) {
  const solc = require('solc')
  const input = {
    language: 'Solidity',
    sources: { 'MileageMining.sol': { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'prague', // the VM's hardfork below
      outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
    },
  }
  const findImports = (p) => {
    try {
      return { contents: fs.readFileSync(path.join(modules, p), 'utf8') }
    } catch (e) {
      return { error: `import ${p}: ${e.message}` }
    }
  }
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))
  const errors = (out.errors || []).filter((e) => e.severity === 'error')
  if (errors.length) throw new Error('solc: ' + errors.map((e) => e.formattedMessage).join('\n'))
  return out.contracts['MileageMining.sol'].MileageMining.evm.bytecode.object
}

function intrinsic(data) {
  let g = 21000
  for (const b of data) g += b === 0 ? 4 : 16
  return g
}

const input = JSON.parse(fs.readFileSync(0, 'utf8'))
const code = hexToBytes('0x' + compile() + input.ctor.replace(/^0x/, ''))
// blockchain serves BLOCKHASH: block n's hash is sha256 of n as 32 bytes.
const blockchain = {
  async getBlock(n) {
    const h = crypto.createHash('sha256').update(Buffer.from(BigInt(n).toString(16).padStart(64, '0'), 'hex')).digest()
    return { hash: () => new Uint8Array(h) }
  },
  async putBlock() {},
  shallowCopy() {
    return this
  },
}
// block: the fields of @ethereumjs/evm's default block, at input.block.
const block =
  input.block === undefined
    ? undefined
    : {
        header: {
          number: BigInt(input.block),
          coinbase: createZeroAddress(),
          timestamp: 0n,
          difficulty: 0n,
          prevRandao: new Uint8Array(32),
          gasLimit: 30_000_000n,
          baseFeePerGas: undefined,
          slotNumber: 0n,
          getBlobGasPrice: () => undefined,
        },
      }
const vm = await createVM({ common: new Common({ chain: Mainnet, hardfork: Hardfork.Prague }), blockchain })
const owner = createAddressFromString(OWNER)
const dep = await vm.evm.runCall({ caller: owner, data: code, gasLimit: 30_000_000n, block })
if (dep.execResult.exceptionError) throw new Error('deploy: ' + dep.execResult.exceptionError.error)
const address = dep.createdAddress
const results = []
for (const c of input.calls) {
  const data = hexToBytes(c.data)
  // A new transaction: no address or slot is warm from the previous one.
  await vm.evm.journal.cleanup()
  const r = await vm.evm.runCall({
    caller: createAddressFromString(c.from || OWNER),
    to: address,
    data,
    gasLimit: 30_000_000n,
    block,
  })
  const exec = Number(r.execResult.executionGasUsed)
  results.push({
    ok: !r.execResult.exceptionError,
    gas: exec + intrinsic(data),
    exec,
    ret: bytesToHex(r.execResult.returnValue),
  })
}
process.stdout.write(
  JSON.stringify({
    owner: OWNER,
    address: address.toString(),
    deployGas: Number(dep.execResult.executionGasUsed) + intrinsic(code) + 32000,
    results,
  }),
)
