// The part of noVNC's RFB class (npm @novnc/novnc, core/rfb.js) the console uses; the
// package ships no type declarations. See its docs/API.md.
declare module '@novnc/novnc' {
  export default class RFB {
    constructor(target: HTMLElement, url: string, options?: { wsProtocols?: string[]; credentials?: { password?: string; username?: string } });
    scaleViewport: boolean;
    resizeSession: boolean;
    focusOnClick: boolean;
    viewOnly: boolean;
    disconnect(): void;
    sendCredentials(creds: { password?: string; username?: string }): void;
    sendCtrlAltDel(): void;
    focus(): void;
    addEventListener(type: string, listener: (e: CustomEvent<any>) => void): void;
  }
}
