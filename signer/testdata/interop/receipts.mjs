// Checks collector receipts and refusals (README §C2) with
// ethers v6, an EIP-712 implementation independent of the Go code (used by
// TestEthersReceiptInterop).
//
// usage: node receipts.mjs <npm prefix holding ethers> <input file>
//
// Input: JSON lines {"chainId": N, "device": "0x..", "kind": "ack"|"nack",
// "seq": "<decimal>", "wire": <ack or nack wire form>, "key": "0x..."}; seq
// repeats the wire's seq as a string (JSON numbers lose precision above
// 2^53 in JavaScript); key is optional, a
// public test key for ethers to sign the same typed data with.
// Output: JSON lines {"digest", "recovered", "ethersSig"}.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [prefix, input] = process.argv.slice(2);
if (!prefix || !input) {
  console.error("usage: node receipts.mjs <npm prefix> <input file>");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(prefix), "package.json"));
const { ethers } = require("ethers");

// README §C2, written out again by hand from the spec.
const types = {
  ack: { MileageReceipt: [
    { name: "device", type: "address" },
    { name: "seq", type: "uint64" },
    { name: "digest", type: "bytes32" },
  ] },
  nack: { MileageRefusal: [
    { name: "device", type: "address" },
    { name: "seq", type: "uint64" },
    { name: "digest", type: "bytes32" },
    { name: "reason", type: "string" },
  ] },
};
if (ethers.TypedDataEncoder.from(types.ack).encodeType("MileageReceipt") !==
    "MileageReceipt(address device,uint64 seq,bytes32 digest)") throw new Error("receipt type string");
if (ethers.TypedDataEncoder.from(types.nack).encodeType("MileageRefusal") !==
    "MileageRefusal(address device,uint64 seq,bytes32 digest,string reason)") throw new Error("refusal type string");

for (const line of readFileSync(input, "utf8").split("\n")) {
  if (line.trim() === "") continue;
  const { chainId, device, kind, seq, wire, key } = JSON.parse(line);
  const domain = { name: "CSOP Mileage", version: "1", chainId };
  const value = { device, seq: BigInt(seq), digest: wire.digest };
  if (kind === "nack") value.reason = wire.reason;
  const digest = ethers.TypedDataEncoder.hash(domain, types[kind], value);
  const recovered = ethers.verifyTypedData(domain, types[kind], value, wire.sig).toLowerCase();
  const ethersSig = key ? await new ethers.Wallet(key).signTypedData(domain, types[kind], value) : null;
  console.log(JSON.stringify({ digest, recovered, ethersSig }));
}
