import { render } from "preact";
import { App } from "./app";
import { whoami } from "./lib/api";

const root = document.getElementById("app");
if (root) {
  render(<App />, root);
  void whoami();
}
