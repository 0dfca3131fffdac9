// The bundle's entry: the style, then the page.
import './style.css';
import './main.tsx';
