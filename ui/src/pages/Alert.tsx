/** An error said at once to screen readers; nothing when there is none. */
export function Alert({ text }: { text: string | null }) {
  if (!text) return null;
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}
