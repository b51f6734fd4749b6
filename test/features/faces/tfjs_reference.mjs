// Reference outputs of face-api's own TF.js code (its bundled tfjs, CPU backend) for the parity tests.
// node tfjs_reference.mjs tiny|expr INPUT.f32 H W MODEL_DIR/ -> JSON {shape, data} on stdout.
import fs from 'fs';
const [,, kind, inFile, h, w, dir] = process.argv;  // dir: face-api's model/ folder, ending in /
const savedProcess = globalThis.process; globalThis.process = undefined;  // face-api's bundle would otherwise require Node's tfjs-node
const faceapi = await import('file://' + dir + '../dist/face-api.esm.js');
globalThis.process = savedProcess;
const tf = faceapi.tf;
async function load(net, name) {
  const manifest = JSON.parse(fs.readFileSync(dir + name + '-weights_manifest.json'));
  const buf = fs.readFileSync(dir + manifest[0].paths[0]);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const map = tf.io.decodeWeights(ab, manifest[0].weights);
  net.loadFromWeightMap(map);
}
tf.env().setPlatform('custom', {fetch: (a,b)=>fetch(a,b), now: ()=>performance.now(), encode: (t)=>new TextEncoder().encode(t), decode: (b,e)=>new TextDecoder(e).decode(b), isTypedArray: (a)=>ArrayBuffer.isView(a) && !(a instanceof DataView), setTimeoutCustom: (f,t)=>setTimeout(f,t)});
await tf.setBackend('cpu');
class Dummy {}
faceapi.env.setEnv({Canvas: Dummy, CanvasRenderingContext2D: Dummy, Image: Dummy, ImageData: Dummy, Video: Dummy, createCanvasElement: () => new Dummy(), createImageElement: () => new Dummy(), fetch: fetch, readFile: fs.promises.readFile});
const raw = new Float32Array(fs.readFileSync(inFile).buffer.slice(0));
const x = tf.tensor4d(raw, [1, +h, +w, 3]);
let out;
if (kind === 'tiny') { const net = new faceapi.TinyFaceDetector(); await load(net, 'tiny_face_detector_model'); out = net.forwardInput(await faceapi.toNetInput(x), +h); }
else { const net = new faceapi.FaceExpressionNet(); await load(net, 'face_expression_model'); out = net.forwardInput(await faceapi.toNetInput(x)); }
process.stdout.write(JSON.stringify({shape: out.shape, data: Array.from(out.dataSync())}));
