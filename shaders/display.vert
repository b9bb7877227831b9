#version 330 core
// Full-screen triangle from gl_VertexID (no vertex buffer). v_uv row 0 = texture row 0, so images keep their
// orientation when rendered into a texture and then shown by ImGui with uv (0,0) at the top-left.
out vec2 v_uv;

void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));  // (0,0) (2,0) (0,2)
  v_uv = p;
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
