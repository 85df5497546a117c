// The camera's WebGPU fix: give every 3x3-style Conv with an odd number of input channels (above
// 3) one more input channel of zeros (a Pad node before it, a zero slice in its weight), which
// computes the same function. Why: onnxruntime-web 1.31.1's WebGPU Conv gave wrong results for
// RVM's Conv_200 (171 input channels -> 80, at 12x20), measured on Chromium's SwiftShader adapter:
// mean |Δ| 3.1 against 2.2 of signal, while 170, 172, 168, 107, 59 and 35 channels were right to
// 1e-6; RVM's matte was 94-150/255 off WebAssembly's, and within 1e-7 with this padding. The
// other odd decoder convs (107, 59, 35) are padded too: same function, negligible cost.
//
// A minimal protobuf editor for ONNX's ModelProto (only the fields touched here are decoded; all
// others are copied byte for byte). Used by camera.js for the WebGPU tier only.
"use strict";

(() => {
  // -- protobuf wire format ----------------------------------------------------------------------
  function readVarint(buf, pos) {
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = buf[pos++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return [value, pos];
      scale *= 128;
    }
  }

  function varint(value) {
    const out = [];
    do {
      let b = value % 128;
      value = Math.floor(value / 128);
      if (value > 0) b |= 0x80;
      out.push(b);
    } while (value > 0);
    return out;
  }

  // [{ field, wire, start, end, body }]: body = the bytes of a length-delimited field, the value of a varint.
  function fields(buf) {
    const list = [];
    let pos = 0;
    while (pos < buf.length) {
      const start = pos;
      let key;
      [key, pos] = readVarint(buf, pos);
      const field = Math.floor(key / 8);
      const wire = key & 7;
      let body;
      if (wire === 0) [body, pos] = readVarint(buf, pos);
      else if (wire === 1) { body = null; pos += 8; }
      else if (wire === 5) { body = null; pos += 4; }
      else if (wire === 2) {
        let len;
        [len, pos] = readVarint(buf, pos);
        body = buf.subarray(pos, pos + len);
        pos += len;
      } else throw new Error(`protobuf wire type ${wire} not supported`);
      list.push({ field, wire, start, end: pos, body });
    }
    return list;
  }

  const text = new TextDecoder();
  const enc = new TextEncoder();
  const str = (bytes) => text.decode(bytes);

  function lenField(field, bytes) {
    return concat([Uint8Array.from([...varint(field * 8 + 2), ...varint(bytes.length)]), bytes]);
  }
  function intField(field, value) { return Uint8Array.from([...varint(field * 8), ...varint(value)]); }
  function strField(field, s) { return lenField(field, enc.encode(s)); }
  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  const raw = (buf, f) => buf.subarray(f.start, f.end);

  // -- ONNX --------------------------------------------------------------------------------------
  // ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5; NodeProto.input = 1, .output = 2,
  // .name = 3, .op_type = 4, .attribute = 5; AttributeProto.name = 1, .i = 3, .s = 4, .type = 20;
  // TensorProto.dims = 1, .data_type = 2, .name = 8, .raw_data = 9.
  function tensorInfo(bytes) {
    const info = { dims: [], dataType: 0, name: "", raw: null };
    for (const f of fields(bytes)) {
      if (f.field === 1 && f.wire === 0) info.dims.push(f.body);
      else if (f.field === 1 && f.wire === 2) { let p = 0; while (p < f.body.length) { let d; [d, p] = readVarint(f.body, p); info.dims.push(d); } }
      else if (f.field === 2) info.dataType = f.body;
      else if (f.field === 8) info.name = str(f.body);
      else if (f.field === 9) info.raw = f.body;
    }
    return info;
  }

  function tensor(name, dims, dataType, rawData) {
    return concat([...dims.map((d) => intField(1, d)), intField(2, dataType), strField(8, name), lenField(9, rawData)]);
  }

  // The model's bytes with the odd-channel Convs padded, and how many were.
  function padOddConvs(model) {
    const top = fields(model);
    const graphField = top.find((f) => f.field === 7);
    const graph = fields(graphField.body);
    const weights = new Map();
    for (const f of graph) if (f.field === 5) weights.set(tensorInfo(f.body).name, f);
    const parts = [];
    const added = [];
    let padded = 0;
    for (const f of graph) {
      if (f.field !== 1) { if (f.field !== 5) parts.push(raw(graphField.body, f)); continue; }
      const node = fields(f.body);
      const op = str(node.find((n) => n.field === 4).body);
      const inputs = node.filter((n) => n.field === 1).map((n) => str(n.body));
      const group = node.filter((n) => n.field === 5).map((n) => fields(n.body))
        .find((a) => str(a.find((x) => x.field === 1).body) === "group");
      const groups = group ? group.find((x) => x.field === 3).body : 1;
      const w = op === "Conv" && groups === 1 && weights.get(inputs[1]);
      const info = w && tensorInfo(w.body);
      if (!info || info.dims.length !== 4 || info.dims[1] % 2 === 0 || info.dims[1] <= 3 || info.dataType !== 1 || !info.raw) {
        parts.push(raw(graphField.body, f));
        continue;
      }
      // W [cout, cin, kh, kw] -> [cout, cin + 1, kh, kw]: a zero slice after each output's cin*kh*kw values.
      const [cout, cin, kh, kw] = info.dims;
      const block = cin * kh * kw * 4;
      const grown = new Uint8Array(cout * (cin + 1) * kh * kw * 4);
      for (let o = 0; o < cout; o++) grown.set(info.raw.subarray(o * block, (o + 1) * block), o * (block + kh * kw * 4));
      weights.set(inputs[1], { replaced: tensor(info.name, [cout, cin + 1, kh, kw], 1, grown) });
      const padsName = `${info.name}_pads_c${cin}`;
      const paddedName = `${inputs[0]}_c${cin + 1}`;
      const pads = new Uint8Array(new BigInt64Array([0n, 0n, 0n, 0n, 0n, 1n, 0n, 0n]).buffer);
      added.push(tensor(padsName, [8], 7, pads));
      const mode = concat([strField(1, "mode"), lenField(4, enc.encode("constant")), intField(20, 3)]);
      parts.push(lenField(1, concat([strField(1, inputs[0]), strField(1, padsName), strField(2, paddedName),
        strField(3, `Pad_${paddedName}`), strField(4, "Pad"), lenField(5, mode)])));
      let first = true;
      parts.push(lenField(1, concat(node.map((n) => {
        if (n.field === 1 && first) { first = false; return strField(1, paddedName); }
        return raw(f.body, n);
      }))));
      padded++;
    }
    for (const w of weights.values()) parts.push(w.replaced ? lenField(5, w.replaced) : raw(graphField.body, w));
    for (const t of added) parts.push(lenField(5, t));
    const newGraph = concat(parts);
    const out = concat(top.map((f) => (f === graphField ? lenField(7, newGraph) : raw(model, f))));
    return { model: out, padded };
  }

  const api = { padOddConvs };
  if (typeof module === "object" && module.exports) module.exports = api;
  else self.mattekitOnnx = api;
})();
