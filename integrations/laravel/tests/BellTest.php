<?php

namespace Tidings\Laravel\Tests;

use Tidings\Laravel\Tests\Fixtures\User;

class BellTest extends TestCase
{
    public function testTheBellComponentRendersTheScriptTheElementAndAFreshToken(): void
    {
        $html = $this->render('<x-tidings-bell :user="$user" theme="dark" />', ['user' => new User(['id' => 'laravel-bell'])]);
        $url = rtrim(getenv('TIDINGS_URL'), '/');

        $this->assertStringContainsString("<script type=\"module\" src=\"{$url}/static/tidings-bell.js\"></script>", $html);
        $this->assertMatchesRegularExpression('/<tidings-bell base-url="' . preg_quote($url, '/') . '" token="([\w-]+\.[\w-]+\.[\w-]+)"/', $html);
        $this->assertStringContainsString('data-token-url="/tidings/token"', $html);
        $this->assertStringContainsString('theme="dark"', $html);
        preg_match('/token="([^"]+)"/', $html, $match);
        $claims = json_decode(base64_decode(strtr(explode('.', $match[1])[1], '-_', '+/')), true);
        $this->assertSame('laravel-bell', $claims['sub']);
    }

    public function testTheLayoutOfTheGuideShowsTheBellToTheLoggedInUserOnly(): void
    {
        $layout = __DIR__ . '/Fixtures/views/app.blade.php';
        $this->assertStringNotContainsString('tidings-bell', $this->app->make('view')->file($layout)->render());

        // The app's auth: the component asks it for the logged-in user.
        $this->app->instance('auth', new class {
            public function user()
            {
                return new User(['id' => 'laravel-layout']);
            }
        });
        $html = $this->app->make('view')->file($layout)->render();
        preg_match('/<tidings-bell [^>]*token="([^"]+)"/', $html, $match);
        $claims = json_decode(base64_decode(strtr(explode('.', $match[1])[1], '-_', '+/')), true);
        $this->assertSame('laravel-layout', $claims['sub']);
    }

    private function render(string $blade, array $data): string
    {
        $path = sys_get_temp_dir() . '/tidings-laravel-' . getmypid() . '/page.blade.php';
        file_put_contents($path, $blade);

        return $this->app->make('view')->file($path, $data)->render();
    }
}
