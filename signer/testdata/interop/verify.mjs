// Checks attestations with ethers v6, an EIP-712 implementation independent
// of the Go code (used by TestEthersInterop).
//
// usage: node verify.mjs <npm prefix holding ethers> <input file>
//
// Input: JSON lines {"chainId": N, "att": <wire form>, "key": "0x..."}; key
// is optional, a public test key for ethers to sign the same typed data with.
// Output: JSON lines {"seq", "digest", "recovered", "ethersSig"} where digest
// is TypedDataEncoder.hash, recovered is verifyTypedData's address
// (lowercase) and ethersSig ethers' own signature (or null).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [prefix, input] = process.argv.slice(2);
if (!prefix || !input) {
  console.error("usage: node verify.mjs <npm prefix> <input file>");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(prefix), "package.json"));
const { ethers } = require("ethers");

// README §C1, written out again by hand from the spec.
const types = {
  MileageAttestation: [
    { name: "device", type: "address" },
    { name: "seq", type: "uint64" },
    { name: "batch", type: "uint64" },
    { name: "batches", type: "uint32" },
    { name: "meters", type: "uint64" },
    { name: "modes", type: "ModeMeters[]" },
    { name: "prev", type: "bytes32" },
    { name: "flags", type: "uint32" },
  ],
  ModeMeters: [
    { name: "mode", type: "string" },
    { name: "meters", type: "uint64" },
  ],
};

const encoder = ethers.TypedDataEncoder.from(types);
if (encoder.encodeType("MileageAttestation") !==
    "MileageAttestation(address device,uint64 seq,uint64 batch,uint32 batches,uint64 meters,ModeMeters[] modes,bytes32 prev,uint32 flags)ModeMeters(string mode,uint64 meters)") {
  throw new Error("ethers encodes another type string: " + encoder.encodeType("MileageAttestation"));
}

for (const line of readFileSync(input, "utf8").split("\n")) {
  if (line.trim() === "") continue;
  const { chainId, att, key } = JSON.parse(line);
  if (att.v !== 1) throw new Error("unknown v " + att.v);
  const domain = { name: "CSOP Mileage", version: "1", chainId };
  const value = {
    device: att.device, seq: att.seq, batch: att.batch, batches: att.batches, meters: att.meters,
    modes: att.modes, prev: att.prev, flags: att.flags,
  };
  const digest = ethers.TypedDataEncoder.hash(domain, types, value);
  const recovered = ethers.verifyTypedData(domain, types, value, att.sig).toLowerCase();
  const ethersSig = key ? await new ethers.Wallet(key).signTypedData(domain, types, value) : null;
  console.log(JSON.stringify({ seq: att.seq, digest, recovered, ethersSig }));
}
