// The wire protocol's frames (docs/protocol.md), as the page sends and reads
// them inside WebSocket binary messages, and the CRC-32 a file carries.

export const FRAME = {
  HELLO: 1, INPUT: 2, SEND_OFFER: 3, LINE: 16, NOTICE: 17, BYE: 18,
  FILE_INCOMING: 19, SEND_STATE: 20, CHANNELS: 21, ROSTER: 22, EVENT: 23,
  FILE_DATA: 32, FILE_END: 33, FILE_ABORT: 34, FILE_ACK: 35, FILE_RESULT: 36,
};
export const PROTOCOL = "trio-chat/3";
export const CHUNK = 256 * 1024;
const MAX_PAYLOAD = CHUNK + 1024;
export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

export function frame(type, payload) {
  const bytes = new Uint8Array(5 + payload.length);
  new DataView(bytes.buffer).setUint32(0, payload.length);
  bytes[4] = type;
  bytes.set(payload, 5);
  return bytes;
}

export function withId(type, id, body) {
  const payload = new Uint8Array(4 + body.length);
  new DataView(payload.buffer).setUint32(0, id);
  payload.set(body, 4);
  return frame(type, payload);
}

export class FrameReader {
  constructor() { this.buffer = new Uint8Array(0); }
  feed(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    const frames = [];
    let at = 0;
    while (joined.length - at >= 5) {
      const view = new DataView(joined.buffer, joined.byteOffset + at);
      const length = view.getUint32(0);
      if (length > MAX_PAYLOAD) throw new Error("frame too large");
      if (joined.length - at < 5 + length) break;
      frames.push([joined[at + 4], joined.subarray(at + 5, at + 5 + length)]);
      at += 5 + length;
    }
    this.buffer = joined.slice(at);
    return frames;
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(crc, bytes) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export function u32(value) {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}
