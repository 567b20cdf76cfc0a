// A safetensors file read in the browser: an 8-byte little-endian header length, a JSON header
// naming each tensor's dtype, shape and byte range, then the data.
//   const f = parseSafetensors(bytes);  f.metadata; f.get("x") → { dtype, shape, data }
const TYPES = { F32: Float32Array, F64: Float64Array, I64: BigInt64Array, I32: Int32Array, U8: Uint8Array };

export function parseSafetensors(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const base = 8 + n;
  const metadata = header.__metadata__ || {};
  return {
    metadata,
    names: Object.keys(header).filter((k) => k !== "__metadata__"),
    has: (name) => name in header,
    get(name) {
      const t = header[name];
      if (!t) throw new Error(`no tensor ${name}`);
      const Type = TYPES[t.dtype];
      if (!Type) throw new Error(`tensor ${name}: dtype ${t.dtype} not read here`);
      const [a, b] = t.data_offsets;
      // Copy: the data need not be aligned for the typed array.
      const raw = bytes.slice(base + a, base + b);
      return { dtype: t.dtype, shape: t.shape, data: new Type(raw.buffer, 0, (b - a) / Type.BYTES_PER_ELEMENT) };
    },
  };
}

/// `data` as a Float32Array (i64 and f64 converted).
export function asF32(t) {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data, Number);
}
