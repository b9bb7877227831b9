#version 330 core
// Display pass for the canvas pane.
//   u_mode 0: the sketch as drawn (dark ink on paper).
//   u_mode 1: "what the model sees": the scribble condition map (white lines on black, as the HED/scribble
//             ControlNet was trained) in false colour, over a faint copy of the sketch so strokes and their
//             condition lines can be compared.
in vec2 v_uv;
out vec4 frag_color;

uniform sampler2D u_sketch;     // R8 luma: 1 paper, 0 ink
uniform sampler2D u_condition;  // R8 condition map: 1 line, 0 background
uniform int u_mode;

// A short warm ramp (black -> purple -> orange -> pale yellow), readable on a dark background.
vec3 ramp(float t) {
  vec3 a = vec3(0.05, 0.03, 0.10);
  vec3 b = vec3(0.55, 0.12, 0.55);
  vec3 c = vec3(0.98, 0.55, 0.15);
  vec3 d = vec3(1.00, 0.97, 0.75);
  if (t < 0.33) return mix(a, b, t / 0.33);
  if (t < 0.66) return mix(b, c, (t - 0.33) / 0.33);
  return mix(c, d, (t - 0.66) / 0.34);
}

void main() {
  float paper = texture(u_sketch, v_uv).r;
  if (u_mode == 0) {
    frag_color = vec4(vec3(paper), 1.0);
    return;
  }
  float line = texture(u_condition, v_uv).r;
  vec3 base = mix(vec3(0.20, 0.22, 0.27), vec3(0.06, 0.07, 0.09), paper);  // faint sketch
  frag_color = vec4(mix(base, ramp(0.35 + 0.65 * line), line), 1.0);
}
