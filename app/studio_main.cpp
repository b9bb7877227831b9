// sprint-studio: the live sketch-to-image desktop app (GLFW + OpenGL 3.3 core + Dear ImGui).
//
//   sprint-studio [--model DIR] [--device auto|cpu|cuda] [--size 1024x1024]
//   sprint-studio --replay events.json --screenshot shot.png --save-output out.png --exit-after-replay
//   sprint-studio --import drawing.png            start from a picture (PNG, JPEG, WebP, BMP, TIFF): a sketch, a
//                                                 flat picture or a photo
//   sprint-studio --bench-frames 600              scripted strokes for 600 UI frames, then the timing report
//
// At exit it prints "frames: N  p50 X ms  p99 Y ms  input-to-photon p50 Z ms" (UI frame time and the time from an
// input that changed the canvas or the settings to the first displayed frame showing it) on stdout.
//
// The main loop follows imgui's example_glfw_opengl3 (docs/architecture.md#display); the app itself is in Studio.
#include <CLI/CLI.hpp>
#include <epoxy/gl.h>  // before GLFW: our GL entry points come from libepoxy
#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "data_dir.h"
#include "settings_cli.h"
#include "user_state.h"
#include "sprint/error.h"
#include "sprint/runtime.h"
#include "studio.h"

using namespace sprint;

namespace {

constexpr double kMaxUiFps = 60.0;  // without vsync (e.g. under Xvfb) the loop would spin a core we need for the model
constexpr double kIdleWaitS = 0.1;  // nothing happening: wake at least this often (spinner, results)

Studio* g_studio = nullptr;  // for the drop callback (GLFW callbacks carry no user data but the window's)

// Files dropped on the window are imported as the starting sketch (the first of them).
void glfw_drop(GLFWwindow*, int count, const char** paths) {
  if (g_studio && count > 0) g_studio->request_import(paths[0], ImportMode::Auto);
}

void glfw_error(int code, const char* description) { std::fprintf(stderr, "sprint-studio: GLFW error %d: %s\n", code, description); }

void apply_style() {
  ImGui::StyleColorsDark();
  ImGuiStyle& s = ImGui::GetStyle();
  s.WindowPadding = ImVec2(10, 10);
  s.FramePadding = ImVec2(8, 4);
  s.ItemSpacing = ImVec2(8, 6);
  s.FrameRounding = 4;
  s.GrabRounding = 4;
  s.ChildRounding = 4;
  s.ScrollbarRounding = 4;
  ImVec4* c = s.Colors;
  c[ImGuiCol_WindowBg] = ImVec4(0.09f, 0.10f, 0.12f, 1.0f);
  c[ImGuiCol_ChildBg] = ImVec4(0.11f, 0.12f, 0.145f, 1.0f);
  c[ImGuiCol_FrameBg] = ImVec4(0.17f, 0.19f, 0.23f, 1.0f);
  c[ImGuiCol_Button] = ImVec4(0.20f, 0.32f, 0.50f, 1.0f);
  c[ImGuiCol_SliderGrab] = ImVec4(0.35f, 0.60f, 0.95f, 1.0f);
  c[ImGuiCol_CheckMark] = ImVec4(0.45f, 0.70f, 1.0f, 1.0f);
}

// DejaVu ships with most Linux desktops; fall back to ImGui's built-in font without it.
ImFont* load_fonts(const std::string& ui_font, const std::string& mono_font, float size) {
  ImGuiIO& io = ImGui::GetIO();
  if (!ui_font.empty() && std::filesystem::exists(ui_font)) io.Fonts->AddFontFromFileTTF(ui_font.c_str(), size);
  else io.Fonts->AddFontDefault();
  if (!mono_font.empty() && std::filesystem::exists(mono_font))
    return io.Fonts->AddFontFromFileTTF(mono_font.c_str(), size - 1);
  return nullptr;
}

// High DPI: the fonts are rasterised at kBaseFontPx x the UI scale and the style's sizes scaled with it, so text is
// sharp and the layout keeps its proportions. The scale is the monitor's content scale (1 on a plain screen, 2 on a
// typical HiDPI one), followed when the window moves to a monitor of another scale, unless --ui-scale fixes it
// (Xvfb always reports 1).
constexpr float kBaseFontPx = 16.0f;
float g_pending_scale = 0;  // set by the content-scale callback, applied between frames
float g_ui_scale = 1.0f;    // the scale in use

void glfw_content_scale(GLFWwindow*, float x_scale, float) { g_pending_scale = x_scale; }

// Rebuilds fonts and style for `scale`; returns the monospace font (nullptr: ImGui's default font). The caller
// re-uploads the font texture when the GL backend already has one.
ImFont* apply_ui_scale(float scale, const std::string& font, const std::string& mono) {
  g_ui_scale = scale;
  ImGui::GetIO().Fonts->Clear();
  ImFont* mono_font = load_fonts(font, mono, std::round(kBaseFontPx * scale));
  ImGui::GetStyle() = ImGuiStyle();
  apply_style();
  ImGui::GetStyle().ScaleAllSizes(scale);
  std::fprintf(stderr, "sprint-studio: UI scale %.2f (font %.0f px)\n", scale, std::round(kBaseFontPx * scale));
  return mono_font;
}

// `state`: what the run started from; on return, what to remember (the panel, the brush, files, the window size).
int run(const StudioOptions& options, int threads, int win_w, int win_h, const std::string& font,
        const std::string& mono, double ui_scale, UserState& state) {
  // Leave one core to the UI thread and the GL driver: with every core given to LibTorch, its busy-waiting worker
  // threads and the UI fight over the CPU. Measured on 2 cores under Xvfb (tiny model, 32x32): 2 threads gave
  // 1650 ms per frame, 1 thread 16 ms.
  if (threads <= 0 && !std::getenv("SPRINT_THREADS"))
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  init_threads(threads);
  glfwSetErrorCallback(glfw_error);
  if (!glfwInit()) {
    std::fprintf(stderr, "sprint-studio: cannot initialise GLFW (no display? DISPLAY=%s; headless runs need Xvfb)\n",
                 std::getenv("DISPLAY") ? std::getenv("DISPLAY") : "");
    return 1;
  }
  // GL 3.3 core + GLSL 330 everywhere; forward-compatible is required on macOS and harmless elsewhere.
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
  GLFWwindow* window = glfwCreateWindow(win_w, win_h, "Sprint Studio", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "sprint-studio: cannot create an OpenGL 3.3 core window\n");
    glfwTerminate();
    return 1;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(1);  // vsync

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  // ImGui's layout beside the remembered settings (user_state.h); the string must outlive the context.
  static const std::string ini = (user_state_dir() / "imgui.ini").string();
  std::error_code ec;
  std::filesystem::create_directories(user_state_dir(), ec);
  io.IniFilename = ec ? nullptr : ini.c_str();
  float scale = static_cast<float>(ui_scale);
  if (scale <= 0) glfwGetWindowContentScale(window, &scale, nullptr);
  ImFont* mono_font = apply_ui_scale(scale > 0 ? scale : 1.0f, font, mono);
  if (ui_scale <= 0) glfwSetWindowContentScaleCallback(window, glfw_content_scale);
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330 core");

  // The main window draws no background (one full-window blended fill less per frame for a software GL): the clear
  // colour is its background, the style's opaque WindowBg.
  const ImVec4 clear = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];

  int code = 0;
  {
    Studio studio(options, [] { glfwPostEmptyEvent(); });
    studio.set_fonts(mono_font, g_ui_scale);
    g_studio = &studio;
    glfwSetDropCallback(window, glfw_drop);
    try {
      studio.init_gl();
      auto last = std::chrono::steady_clock::now();
      const auto t0 = last;
      std::string title;
      while (!glfwWindowShouldClose(window) && !studio.wants_exit()) {
        if (studio.needs_fast_loop()) glfwPollEvents();
        else glfwWaitEventsTimeout(kIdleWaitS);
        if (glfwGetWindowAttrib(window, GLFW_ICONIFIED)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        const auto now = std::chrono::steady_clock::now();
        const double dt = std::chrono::duration<double>(now - last).count();
        last = now;

        if (g_pending_scale > 0) {  // moved to a monitor of another scale
          ImFont* mono_font = apply_ui_scale(g_pending_scale, font, mono);
          studio.set_fonts(mono_font, g_ui_scale);
          ImGui_ImplOpenGL3_DestroyFontsTexture();
          ImGui_ImplOpenGL3_CreateFontsTexture();
          g_pending_scale = 0;
        }
        ImGui_ImplOpenGL3_NewFrame();
        ImGui_ImplGlfw_NewFrame();
        studio.inject_input();
        ImGui::NewFrame();
        studio.frame(std::chrono::duration<double>(now - t0).count(), dt);
        ImGui::Render();
        int fb_w = 0, fb_h = 0;
        glfwGetFramebufferSize(window, &fb_w, &fb_h);
        glViewport(0, 0, fb_w, fb_h);
        glClearColor(clear.x, clear.y, clear.z, 1.0f);
        glClear(GL_COLOR_BUFFER_BIT);
        ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
        studio.after_render(fb_w, fb_h);
        glfwSwapBuffers(window);
        if (std::string t = studio.window_title(); t != title) {
          title = std::move(t);
          glfwSetWindowTitle(window, title.c_str());
        }

        const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - now).count();
        if (spent < 1.0 / kMaxUiFps) std::this_thread::sleep_for(std::chrono::duration<double>(1.0 / kMaxUiFps - spent));
      }
      code = studio.exit_code();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sprint-studio: error: %s\n", message_of(e).c_str());
      code = 1;
    }
    studio.print_report();
    state = studio.remembered(state);
    glfwGetWindowSize(window, &state.window_w, &state.window_h);
    glfwSetDropCallback(window, nullptr);
    g_studio = nullptr;
    studio.shutdown_gl();
  }  // joins the worker before GL and GLFW go away

  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  StudioOptions o;
  // The bundled model and the shaders, beside the executable (data_dir.h).
  o.settings.model = default_model_dir().string();
  o.shaders = shader_dir().string();
  // What the last run left (user_state.h), under the command line: the flags below start from these values.
  bool reset_settings = false;
  for (int i = 1; i < argc; ++i) reset_settings = reset_settings || std::string(argv[i]) == "--reset-settings";
  std::string notice;
  UserState state = reset_settings ? UserState{} : load_user_state(notice);
  if (!notice.empty()) std::fprintf(stderr, "sprint-studio: note: %s\n", notice.c_str());
  if (state.settings) {
    const std::string model = o.settings.model;
    o.settings = *state.settings;
    if (!std::filesystem::is_directory(o.settings.model)) {
      if (!o.settings.model.empty())
        std::fprintf(stderr, "sprint-studio: note: the last model folder %s is gone; using %s\n",
                     o.settings.model.c_str(), model.c_str());
      o.settings.model = model;
    }
  }
  o.seed_locked = state.seed_locked;
  o.show_condition = state.show_condition;
  o.brush_radius = state.brush_radius;
  o.recent_files = state.recent_files;
  int threads = 0, win_w = 1600, win_h = 900;
  if (state.window_w > 0 && state.window_h > 0) win_w = state.window_w, win_h = state.window_h;
  std::string window = str(win_w, "x", win_h);
  std::string font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
  std::string mono = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";
  CLI::App app{"sprint-studio: live sketch-to-image with SANA-Sprint + ControlNet"};
  // The initial settings (the live loop samples with the steps' default schedule: no --timesteps).
  add_settings_flags(app, o.settings, {"timesteps"});
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) { return s.empty() ? std::string("empty: use auto, cpu, cuda or cuda:N") : std::string(); },
          "DEVICE"));
  app.add_option("--replay", o.replay, "play recorded input events (JSON) after the model has loaded");
  app.add_option("--screenshot", o.screenshot, "write a PNG of the window when the run ends");
  app.add_option("--save-output", o.save_output, "write the last generated frame (PNG with settings) when the run ends");
  app.add_option("--output-dir", o.output_dir, "folder for the 'Save output PNG' button")->capture_default_str();
  add_integer_option(app, "--frames", o.frames, "exit after this many UI frames (0 = run until closed)", 0, INT_MAX);
  app.add_flag("--exit-after-replay", o.exit_after_replay, "exit once the replay has played and its last frame is shown");
  add_decimal_option(app, "--timeout", o.timeout_s, "headless runs (--replay/--frames) fail after this many seconds", 1,
                     7 * 24 * 3600.0);
  app.add_option("--shaders", o.shaders, "folder with the GLSL files")->capture_default_str();
  add_integer_option(app, "--threads", threads, "CPU threads for the model (0 = all cores but one, or $SPRINT_THREADS)",
                     0, kMaxThreads);
  app.add_option("--window", window, "window size WIDTHxHEIGHT")->capture_default_str();
  app.add_option("--import", o.import_path,
                 "picture (PNG, JPEG, WebP, BMP, TIFF) to start from: a sketch, a flat picture or a photo "
                 "(File > Import image)");
  app.add_option("--import-mode", o.import_mode, "how --import reads the picture: auto, sketch, picture or photo")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "sketch", "picture", "photo"}));
  app.add_option("--hed", o.hed, "HED weights (safetensors) for importing photos; without them an OpenCV soft-edge "
                                 "detector is used");
  add_integer_option(app, "--history", o.history_size, "frames kept in the history strip", 1, 256);
  add_integer_option(app, "--bench-frames", o.bench_frames,
                     "draw scripted strokes (or play --replay) and exit after this many UI frames with the timing report",
                     0, INT_MAX);
  bool no_adaptive = false;
  app.add_flag("--no-adaptive-steps", no_adaptive, "never draft with fewer steps while drawing");
  add_decimal_option(app, "--frame-budget-ms", o.pacing.budget_ms,
                     "adaptive pacing: frames slower than this (at the chosen steps) draft while drawing", 0, 60000);
  add_integer_option(app, "--drawing-steps", o.pacing.drawing_steps, "adaptive pacing: steps of a draft", 1, 4);
  add_decimal_option(app, "--pause", o.pacing.pause_s, "adaptive pacing: seconds without input before refining", 0,
                     3600);
  app.add_option("--font", font, "UI font (TTF)")->capture_default_str();
  double ui_scale = 0;
  add_decimal_option(app, "--ui-scale", ui_scale,
                     "size of text and controls (0 = the monitor's content scale, followed when the window moves; "
                     "2 doubles everything)",
                     0, 8);
  app.add_flag("--reset-settings", reset_settings,
               str("start from the default settings instead of those remembered in ", user_state_dir().string()));
  add_program_flags(app, "sprint-studio");
  set_one_line_failures(app, "sprint-studio");
  if (const int rc = parse_command_line(app, argc, argv); rc >= 0) return rc;
  o.pacing.enabled = !no_adaptive;
  try {
    const ImageSize w = parse_size(window, "--window");
    win_w = w.width, win_h = w.height;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-studio: error: %s\n", message_of(e).c_str());
    return 2;
  }
  int code = 1;
  try {
    code = run(o, threads, win_w, win_h, font, mono, ui_scale, state);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-studio: error: %s\n", message_of(e).c_str());
    return 1;
  }
  try {
    save_user_state(state);
  } catch (const std::exception& e) {  // the run's own outcome stands; only the memory of it is lost
    std::fprintf(stderr, "sprint-studio: note: the settings were not remembered: %s\n", message_of(e).c_str());
  }
  return code;
}
